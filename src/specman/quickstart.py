"""``specman quickstart``: the main job on the embedded default, with nothing to prepare.

1. push the bundled sample manifests (or ``--source``) to an OCI image layout in a work directory — the
   embedded default registry — as ``manifests.tgz``, exactly as ``specman push`` does;
2. start ``specman serve`` on that layout (a real child process: sync loop + HTTPS with a private CA generated
   into the data directory), its log lines shown as they come;
3. wait until it is ready, then fetch every source file over HTTPS, verifying the server certificate against the
   generated CA, and compare each body's sha256 with the source;
4. print the URLs and ``curl`` lines to try, and keep serving until Ctrl-C — or stop at once (``--exit-after
   0``, the default when stdout is not a terminal), or after ``--exit-after`` seconds.

The work directory (a temp dir unless ``--work-dir``) is removed at the end unless it was given.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import click
import httpx

from specman.errors import ContentError, SpecmanError
from specman.oci import open_target, push_artifact
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.oci.repository import RegistryOptions
from specman.samples import bundled_manifests, tree_digest
from specman.ui import UI
from specman.web import parse_listen

__all__ = ["quickstart"]

_READY_TIMEOUT = 60.0


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_ready(client: httpx.Client, ca: Path, server: subprocess.Popen[bytes]) -> None:
    """Until ``/readyz`` answers 200 over HTTPS verified with the generated CA (written before serve listens)."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SpecmanError(f"specman serve exited with code {server.returncode} (its log is above)")
        try:
            if ca.exists() and client.get("/readyz").status_code == 200:
                return
        except (httpx.TransportError, OSError):
            pass  # not listening yet
        time.sleep(0.1)
    raise SpecmanError(f"specman serve was not ready within {_READY_TIMEOUT:.0f} s (its log is above)")


def _verify(client: httpx.Client, source: Path, expected: dict[str, str], ui: UI) -> None:
    """Every source file served with the same sha256, fetched 8 at a time; one error naming what differs."""
    total = sum((source / path).stat().st_size for path in expected)
    with ui.progress() as start, ThreadPoolExecutor(8, thread_name_prefix="specman-verify") as pool:
        advance = start("verify over HTTPS", total)

        def fetch(path: str) -> tuple[str, str | None]:
            digest = hashlib.sha256()
            with client.stream("GET", "/" + quote(path)) as response:
                if response.status_code != 200:
                    return path, None
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    advance(len(chunk))
            return path, digest.hexdigest()

        missing, different = [], []
        for path, actual in pool.map(fetch, sorted(expected)):
            if actual is None:
                missing.append(path)
            elif actual != expected[path]:
                different.append(path)
    if missing or different:
        first = (missing + different)[0]
        raise ContentError(
            f"verification failed: {len(missing)} missing, {len(different)} different over HTTPS (first: {first})"
        )


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@click.command()
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory to publish (default: the bundled sample manifests).",
)
@click.option(
    "--work-dir",
    envvar="SPECMAN_WORK_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the OCI layout and the data dir go (default: a temp dir, removed at the end).",
)
@click.option("--tag", default="0.0.0", show_default=True, envvar="SPECMAN_TAG", help="Tag to push.")
@click.option(
    "--listen",
    default="127.0.0.1:8443",
    show_default=True,
    envvar="SPECMAN_LISTEN",
    help="Where to serve (port 0, or a busy port: any free port).",
)
@click.option(
    "--exit-after",
    type=float,
    default=None,
    envvar="SPECMAN_EXIT_AFTER",
    help="Stop serving this many seconds after the verification (0: at once). "
    "Default: serve until Ctrl-C on a terminal, stop at once otherwise.",
)
@click.pass_obj
def quickstart(
    ui: UI, source: Path | None, work_dir: Path | None, tag: str, listen: str, exit_after: float | None
) -> None:
    """Push the sample manifests to a local OCI layout, sync and serve them over HTTPS, and verify every file."""
    if exit_after is not None and exit_after < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--exit-after")
    host, port = parse_listen(listen, any_port=True)
    if port == 0:
        port = _free_port(host)
    elif not _port_free(host, port):
        port = _free_port(host)
        ui.status(f"{listen} is in use: serving on {host}:{port} instead")
    source = source or bundled_manifests()
    keep = work_dir is not None
    work = work_dir or Path(tempfile.mkdtemp(prefix="specman-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    layout, data = work / "registry" / DEFAULT_REPOSITORY, work / "data"
    try:
        started = time.monotonic()
        expected = tree_digest(source)
        ui.status(f"Source: {source} ({len(expected)} files)")
        target = open_target(f"{layout}:{tag}", RegistryOptions(oci_layout=True), create_layout=True)
        with ui.progress() as start:
            pushed = push_artifact(target.repository, source, tag, start_progress=start)
        ui.status(f"Pushed {target.repository.display}:{tag} digest {pushed.digest}")
        base = f"https://{host if ':' not in host else f'[{host}]'}:{port}"
        command = [sys.executable, "-m", "specman", "serve", str(layout), "--oci-layout", "--data-dir", str(data)]
        command += ["--listen", f"{host}:{port}", "--interval", "10s"]
        ui.status(f"Starting specman serve on {base} (data dir {data})")
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            ca = data / "tls" / "ca.crt"
            while not ca.exists() and server.poll() is None and time.monotonic() - started < _READY_TIMEOUT:
                time.sleep(0.05)
            if not ca.exists():
                _wait_ready(httpx.Client(), ca, server)  # says why: serve exited, or the time ran out
            with httpx.Client(base_url=base, verify=str(ca), trust_env=False, timeout=30) as client:
                _wait_ready(client, ca, server)
                _verify(client, source, expected, ui)
            elapsed = time.monotonic() - started
            ui.status(f"Verified {len(expected)} files over HTTPS: identical to the source ({elapsed:.2f} s)")
            ui.result(pushed.digest)
            _linger(ui, server, base, ca, expected, exit_after)
        finally:
            _stop(server)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _linger(
    ui: UI, server: subprocess.Popen[bytes], base: str, ca: Path, files: dict[str, str], exit_after: float | None
) -> None:
    """Keep serving (until Ctrl-C, or ``exit_after`` seconds) and say what to try meanwhile."""
    if exit_after is None:
        exit_after = float("inf") if sys.stdout.isatty() else 0.0
    if exit_after == 0:
        return
    sample = next((p for p in sorted(files) if p.endswith("index.json")), sorted(files)[0])
    ui.status("Try it (another terminal):")
    ui.status(f"  curl --cacert {ca} {base}/{quote(sample)}")
    ui.status(f"  curl -k {base}/            # the merged view, as an index")
    ui.status(f"  curl -k {base}/_specman/status")
    ui.status(f"  curl -k {base}/metrics")
    ui.status("Ctrl-C stops the server." if exit_after == float("inf") else f"Stopping in {exit_after:g} s.")
    try:
        server.wait(None if exit_after == float("inf") else exit_after)
    except subprocess.TimeoutExpired:
        return
    except KeyboardInterrupt:
        ui.status("Stopping")
        return
    raise SpecmanError(f"specman serve exited with code {server.returncode} (its log is above)")
