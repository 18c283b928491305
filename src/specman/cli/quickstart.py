"""``specman quickstart``: the whole migration on the embedded default, with nothing to prepare.

Everything runs on 127.0.0.1 in a work directory:

1. an OCI image layout — the embedded default registry (or ``--to`` a real registry, with the common options);
2. ``specman console`` (SQLite, its own CA, a generated admin password in a 0600 file) and ``specman serve``
   syncing that repository (HTTPS with its own CA, a generated notification token) — real child processes whose
   log lines are shown as they come;
3. ``specman migrate`` of the bundled sample manifests (or ``--source``): preflight, push, wait until served,
   the parity proof over HTTPS, the switch of the console's SCAR to specman and both sync jobs;
4. the URLs and ``curl`` lines to try; it keeps serving until Ctrl-C — or stops at once (``--exit-after 0``, the
   default when stdout is not a terminal), or after ``--exit-after`` seconds.

The work directory (a temp dir unless ``--work-dir``) is removed at the end unless it was given.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import click
import httpx

from specman.cli.migrate import run_migration
from specman.cli.options import ConnectionSettings
from specman.cli.settings import Settings, opt, uses
from specman.cli.ui import UI
from specman.console.client import ConsoleClient
from specman.errors import SpecmanError, UsageError
from specman.files import atomic_write
from specman.migrate.endpoint import SpecmanEndpoint
from specman.migrate.run import MigrationPlan
from specman.migrate.source import DirectorySource
from specman.oci import open_target
from specman.oci.http import TLSOptions
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.oci.repository import RegistryOptions, Target
from specman.runtime.granian import parse_listen
from specman.samples import bundled_manifests

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


def _pick_port(ui: UI, listen: str, what: str) -> tuple[str, int]:
    host, port = parse_listen(listen, any_port=True)
    if port == 0:
        return host, _free_port(host)
    if not _port_free(host, port):
        free = _free_port(host)
        ui.status(f"{listen} is in use: {what} on {host}:{free} instead")
        return host, free
    return host, port


def _secret(path: Path) -> str:
    value = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (value + "\n").encode(), mode=0o600)
    return value


def _url(host: str, port: int) -> str:
    return f"https://{host if ':' not in host else f'[{host}]'}:{port}"


def _wait_healthy(name: str, url: str, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until ``url``/healthz answers over HTTPS verified with the CA the process generated."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SpecmanError(f"{name} exited with code {proc.returncode} (its log is above)")
        if ca.exists():
            try:
                with httpx.Client(verify=str(ca), trust_env=False, timeout=5) as client:
                    if client.get(url + "/healthz").status_code == 200:
                        return
            except (httpx.TransportError, OSError):
                pass  # not listening yet
        time.sleep(0.1)
    raise SpecmanError(f"{name} did not answer within {_READY_TIMEOUT:.0f} s (its log is above)")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _registry_env(options: RegistryOptions, target_host: str | None) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment that give ``specman serve`` the registry options of ``--to`` (a password
    travels in the child's environment, never on its command line)."""
    if options.oci_layout:
        return ["--oci-layout"], {}
    args: list[str] = []
    if options.plain_http:
        args.append("--plain-http")
    if options.insecure:
        args.append("--insecure")
    if options.provider != "auto":
        args += ["--provider", options.provider]
    if options.ca_file:
        args += ["--ca-file", str(Path(options.ca_file).resolve())]
    env: dict[str, str] = {}
    creds = options.credentials_for(target_host) if target_host else None
    if creds and creds.username and creds.password:
        env = {"SPECMAN_USERNAME": creds.username, "SPECMAN_PASSWORD": creds.password}
    return args, env


@dataclass(frozen=True)
class QuickstartSettings(Settings):
    """What ``quickstart`` migrates, where it works and listens, how long it keeps serving."""

    param: ClassVar[str] = "settings"

    source: Path | None = opt(
        "--source",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Directory to migrate (default: the bundled sample manifests).",
    )
    ref: str | None = opt("--to", help="A real registry repository (default: a local OCI layout).")
    work_dir: Path | None = opt(
        "--work-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the layout, the data dirs and the secrets go (default: a temp dir, removed at the end).",
    )
    tag: str = opt("--tag", default="0.0.0", show_default=True, help="Tag to push.")
    listen: str = opt(
        "--listen",
        default="127.0.0.1:8443",
        show_default=True,
        help="Where specman serves (port 0, or a busy port: any free port).",
    )
    console_listen: str = opt(
        "--console-listen", default="127.0.0.1:8444", show_default=True, help="Where the console listens."
    )
    exit_after: float | None = opt(
        "--exit-after",
        type=float,
        default=None,
        help="Stop serving this many seconds after the migration (0: at once). "
        "Default: serve until Ctrl-C on a terminal, stop at once otherwise.",
    )


@click.command()
@uses(QuickstartSettings, ConnectionSettings)
@click.pass_obj
def quickstart(ui: UI, /, settings: QuickstartSettings, connection: ConnectionSettings) -> None:
    """Migrate the sample manifests to a local registry with a local console and specman, proving every file."""
    if settings.exit_after is not None and settings.exit_after < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--exit-after")
    options = replace(connection.options(), oci_layout=settings.ref is None)
    host, port = _pick_port(ui, settings.listen, "serving")
    chost, cport = _pick_port(ui, settings.console_listen, "the console")
    if (chost, cport) == (host, port):
        raise UsageError("--listen and --console-listen must differ")
    keep = settings.work_dir is not None
    work: Path = (settings.work_dir or Path(tempfile.mkdtemp(prefix="specman-quickstart-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        repo = str(work / "registry" / DEFAULT_REPOSITORY) if settings.ref is None else settings.ref
        target = open_target(
            f"{repo}:{settings.tag}" if ":" not in repo.rsplit("/", 1)[-1] else repo,
            options,
            create_layout=options.oci_layout,
        )
        local = _Local(work, _url(host, port), _url(chost, cport))
        password, token = _secret(local.console_password), _secret(local.notify_token)  # before the services start
        _start_services(ui, local, procs, target, repo, options, f"{host}:{port}", f"{chost}:{cport}")
        plan = MigrationPlan(
            source=DirectorySource(settings.source or bundled_manifests()),
            target=target,
            registry=options,
            console=ConsoleClient(local.console, tls=TLSOptions(ca_file=str(local.console_ca))),
            console_user="admin",
            console_password=password,
            specman=SpecmanEndpoint(local.serve, ca_file=str(local.serve_ca)),
            tag=target.tag or settings.tag,
            work_dir=work / "migrate",
            notify_token=token,
            timeout=120.0,
        )
        (work / "migrate").mkdir(exist_ok=True)
        try:
            summary = run_migration(plan, ui)
        finally:
            plan.console.close()
            plan.specman.close()
            target.repository.close()
        ui.result(str(summary.get("digest")))
        _linger(ui, procs[-1], local.serve, local.serve_ca, local.console, local.console_password, settings.exit_after)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class _Local:
    """The quickstart's work directory and the URLs of its two services."""

    work: Path
    serve: str
    console: str

    @property
    def serve_ca(self) -> Path:
        return self.work / "serve" / "tls" / "ca.crt"

    @property
    def console_ca(self) -> Path:
        return self.work / "console" / "tls" / "ca.crt"

    @property
    def console_password(self) -> Path:
        return self.work / "secrets" / "console-admin-password"

    @property
    def notify_token(self) -> Path:
        return self.work / "secrets" / "notify-token"


def _start_services(
    ui: UI,
    local: _Local,
    procs: list[subprocess.Popen[bytes]],
    target: Target,
    repo: str,
    options: RegistryOptions,
    listen: str,
    console_listen: str,
) -> None:
    """Start ``specman console`` and ``specman serve`` (appended to ``procs``) and wait until both answer."""
    reference = target.reference
    repo_arg = repo if reference is None else f"{reference.registry}/{reference.repository}"
    reg_args, reg_env = _registry_env(options, reference.api_host if reference else None)

    def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "specman", *args], stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}
        )
        procs.append(proc)
        return proc

    work = local.work
    ui.status(f"Starting the console on {local.console} (data dir {work / 'console'})")
    console_proc = start(
        [
            "console",
            "--data-dir",
            str(work / "console"),
            "--listen",
            console_listen,
            "--admin-password-file",
            str(local.console_password),
        ]
    )
    ui.status(f"Starting specman serve on {local.serve} (data dir {work / 'serve'})")
    serve_proc = start(
        [
            "serve",
            repo_arg,
            *reg_args,
            "--data-dir",
            str(work / "serve"),
            "--listen",
            listen,
            "--interval",
            "10s",
            "--notify-token-file",
            str(local.notify_token),
        ],
        reg_env,
    )
    _wait_healthy("specman console", local.console, local.console_ca, console_proc)
    _wait_healthy("specman serve", local.serve, local.serve_ca, serve_proc)


def _linger(
    ui: UI,
    server: subprocess.Popen[bytes],
    base: str,
    ca: Path,
    console: str,
    console_pw: Path,
    exit_after: float | None,
) -> None:
    """Keep serving (until Ctrl-C, or ``exit_after`` seconds) and say what to try meanwhile."""
    if exit_after is None:
        exit_after = float("inf") if sys.stdout.isatty() else 0.0
    if exit_after == 0:
        return
    say: Callable[[str], None] = ui.status
    say("Try it (another terminal):")
    say(f"  curl --cacert {ca} {base}/cloud-types/index.json")
    say(f"  curl -k {base}/            # the merged view, as an index")
    say(f"  curl -k {base}/_specman/status     # or open {base}/_specman/ in a browser")
    say(f"  curl -k {base}/_specman/metrics")
    say(f"  console: {console}/ in a browser (user admin, password in {console_pw}), or its API:")
    say(
        f'    TOKEN=$(jq -n --rawfile p {console_pw} \'{{username: "admin", password: ($p | rtrimstr("\\n"))}}\' |'
        f" curl -sk {console}/v1/auth/syslogin -H 'Content-Type: application/json' -d @- | jq -r .Authorization)"
    )
    say(f'    curl -k -H "Authorization: Bearer $TOKEN" {console}/v1/system/config/scar')
    say("Ctrl-C stops everything." if exit_after == float("inf") else f"Stopping in {exit_after:g} s.")
    try:
        server.wait(None if exit_after == float("inf") else exit_after)
    except subprocess.TimeoutExpired:
        return
    except KeyboardInterrupt:
        ui.status("Stopping")
        return
    raise SpecmanError(f"specman serve exited with code {server.returncode} (its log is above)")
