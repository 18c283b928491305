"""``specman serve`` as operators run it: real processes killed with SIGKILL mid-sync, registries that are down,
TLS options, bad configuration, a full disk and a graceful stop.

Every server is a real ``python -m specman serve`` (``tests/fixtures/serve.py``) against the real
``docker-registry`` on 127.0.0.1, verified with real TLS.  Waits are bounded polls; nothing asserts on time.

The view checks compare what is served with the two versions a data dir can legally hold: ``A`` (tag 1.0.0 at its
first content) or ``B`` (1.0.0 moved to new content, plus 2.0.0 overriding some of its paths) — every file of one
of them, with its exact bytes, and nothing else.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography import x509

from specman.oci import (
    LayoutRepository,
    RegistryOptions,
    Repository,
    open_repository,
    parse_reference,
    push_artifact,
)
from specman.store import Store
from tests.conftest import FaultProxyFactory, RegistryFactory, ServeFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.certs import make_certs
from tests.fixtures.faultproxy import Fault
from tests.fixtures.registry import Registry, free_port
from tests.fixtures.serve import ServeProcess, start_serve
from tests.test_cli import one_line_error, run

Files = dict[str, bytes]

BLOB_HOLD = 8.0  # seconds the proxy holds each blob download in the SIGTERM-during-sync test
WAIT = 120.0  # generous bound for every poll: the machine is shared and has 2 cores


# -- trees, pushes, views -------------------------------------------------------------------------------------


def _content(label: str, path: str, index: int) -> bytes:
    """Known, label-stamped content of varying length (a mix or a truncation cannot go unnoticed)."""
    filler = ("0123456789abcdef" * 64)[: 40 + (index * 37) % 900]
    return f"{label} {path} {index}\n{filler}\n".encode()


def _files(label: str, paths: list[str]) -> Files:
    return {path: _content(label, path, i) for i, path in enumerate(paths)}


def _paths(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i % 40:02d}/s{i % 7}/f{i:05d}.json" for i in range(start, start + count)]


def _write_tree(directory: Path, files: Mapping[str, bytes]) -> Path:
    for path, data in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return directory


def _read_tree(tree: Path) -> Files:
    found: Files = {}
    for root, _dirs, names in os.walk(tree):
        for name in names:
            path = Path(root) / name
            found[path.relative_to(tree).as_posix()] = path.read_bytes()
    return found


def _remote(registry: Registry, name: str) -> Repository:
    return open_repository(parse_reference(f"{registry.host}/{name}"), RegistryOptions(plain_http=True))


def _push(registry: Registry, name: str, tag: str, files: Mapping[str, bytes], work: Path) -> str:
    """Push ``files`` as the migration documents it: a ``manifests.tgz`` pushed as is; the manifest digest."""
    archive = work / f"manifests-{uuid.uuid4().hex[:8]}" / "manifests.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(make_tar(Entry(f"./{path}", data=data) for path, data in sorted(files.items())))
    repo = _remote(registry, name)
    try:
        return str(push_artifact(repo, archive, tag).digest)
    finally:
        repo.close()
        shutil.rmtree(archive.parent, ignore_errors=True)


def _source(registry: Registry, name: str) -> list[str]:
    return [f"{registry.host}/{name}", "--plain-http"]


def _unreachable() -> list[str]:
    """A source nobody answers for: a sync started with it fails, so a check sees what is on disk."""
    return [f"127.0.0.1:{free_port()}/nobody/listens", "--plain-http"]


def _sync_once(source: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run("sync", *source, "--data-dir", str(data_dir), "--once")


def _copy_data(src: Path, dst: Path) -> Path:
    """``cp -a``: hard links between versions and generations stay hard links."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def _poll(check: Callable[[], Any], what: str, timeout: float = WAIT, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy (returned); fail after ``timeout`` with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _status(server: ServeProcess) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/_specman/status")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def _assert_clean(data_dir: Path) -> None:
    """No leftovers of interrupted work: empty staging, no half swap, no version or generation without record."""
    assert sorted(p.name for p in (data_dir / "staging").iterdir()) == []
    assert list(data_dir.glob("current.tmp-*")) == []
    for version in (data_dir / "versions").iterdir():
        assert (version / "version.json").is_file(), f"incomplete version left: {version}"
    for generation in (data_dir / "generations").iterdir():
        assert (generation / "generation.json").is_file(), f"incomplete generation left: {generation}"


@dataclass(frozen=True)
class View:
    name: str
    files: Files  # the merged view
    tags: dict[str, str]  # tag -> manifest digest
    versions: dict[str, Files]  # tag -> that version alone


def _describe(found: Files, views: list[View]) -> str:
    labels: dict[str, int] = {}
    for data in found.values():
        label = data.split(b" ", 1)[0].decode(errors="replace")
        labels[label] = labels.get(label, 0) + 1
    lines = [f"{len(found)} files, by content label: {labels}"]
    for view in views:
        missing = sorted(set(view.files) - set(found))
        extra = sorted(set(found) - set(view.files))
        differ = sorted(p for p in set(view.files) & set(found) if view.files[p] != found[p])
        lines.append(
            f"vs {view.name}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
            f"{len(differ)} different {differ[:3]}"
        )
    return "\n".join(lines)


def _check_served_view(server: ServeProcess, views: list[View], rng: random.Random, sample: int = 120) -> View:
    """The published tree is exactly one view, and the server serves that view (a sample of paths over HTTP)."""
    data_dir = server.data_dir
    current = data_dir / "current"
    assert current.is_symlink(), "nothing published"
    number = int(os.readlink(current).rsplit("/", 1)[-1])
    found = _read_tree(current / "tree")
    matching = [view for view in views if view.files == found]
    assert len(matching) == 1, "the published tree is no complete version:\n" + _describe(found, views)
    view = matching[0]
    every_path = sorted({path for v in views for path in v.files})
    with server.client() as client:
        ready = client.get("/_specman/readyz")
        assert ready.status_code == 200, ready.text
        status = client.get("/_specman/status").json()
        assert status["generation"] == number
        assert status["tags"] == view.tags
        for path in rng.sample(every_path, min(sample, len(every_path))):
            response = client.get("/" + path)
            if path in view.files:
                assert response.status_code == 200, (path, response.status_code)
                assert response.content == view.files[path], f"{path}: served bytes are not {view.name}'s"
            else:
                assert response.status_code == 404, (path, response.status_code, response.content[:40])
        for tag, files in view.versions.items():
            for path in rng.sample(sorted(files), 10):
                response = client.get(f"/_specman/versions/{tag}/{path}")
                assert response.status_code == 200 and response.content == files[path], (tag, path)
    return view


# -- a repository with version A synced, and version B pushed over it -----------------------------------------------


@dataclass(frozen=True)
class Versions:
    registry: Registry
    name: str
    data_a: Path  # a data dir serving A (copy it: never start a server on it)
    a: View
    b: View


def _make_versions(registry: Registry, work: Path, count: int) -> Versions:
    """``serve-proc/<uuid>``: 1.0.0 = A (``count`` files) synced into ``data_a``; then 1.0.0 moved to B1 (A's paths
    with new content + count/8 new paths) and 2.0.0 = B2 (a tenth of A's paths, some of B1's new ones and paths of
    its own), so the view B is B1 overridden by B2."""
    name = f"serve-proc/{uuid.uuid4().hex[:10]}"
    base = _paths("d", count)
    new = count // 8
    files_a = _files("A", base)
    digest_a = _push(registry, name, "1.0.0", files_a, work)
    data_a = work / "data-a"
    proc = _sync_once(_source(registry, name), data_a)
    assert proc.returncode == 0, proc.stderr
    files_b1 = _files("B1", base + _paths("n", new, count))
    files_b2 = _files("B2", base[::10] + _paths("n", new // 4, count + new - new // 8) + _paths("x", new // 4, 0))
    digest_b1 = _push(registry, name, "1.0.0", files_b1, work)
    digest_b2 = _push(registry, name, "2.0.0", files_b2, work)
    a = View("A", files_a, {"1.0.0": digest_a}, {"1.0.0": files_a})
    b = View(
        "B", {**files_b1, **files_b2}, {"1.0.0": digest_b1, "2.0.0": digest_b2}, {"1.0.0": files_b1, "2.0.0": files_b2}
    )
    return Versions(registry, name, data_a, a, b)


@pytest.fixture(scope="module")
def versions(plain_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """A and B of 3,000+ files (see ``_make_versions``)."""
    return _make_versions(plain_registry, tmp_path_factory.mktemp("versions"), 3000)


@pytest.fixture(scope="module")
def small_versions(plain_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """A and B of 200+ files (see ``_make_versions``)."""
    return _make_versions(plain_registry, tmp_path_factory.mktemp("small-versions"), 200)


# -- 1. kill -9 during a sync, then restart ---------------------------------------------------------------------

# (log line that shows how far the sync got, upper bound of a random extra delay before SIGKILL)
KILL_POINTS: tuple[tuple[str, float], ...] = (
    ("Downloading", 0.0),
    ("Persisting", 0.1),
    ("Downloading", 0.3),
    ("Stored", 0.1),
    ("published generation", 0.05),
)


def test_kill9_during_sync_then_restart(versions: Versions, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"random seed {seed}")
    data = _copy_data(versions.data_a, tmp_path / "data")
    views = [versions.a, versions.b]
    live = _source(versions.registry, versions.name)
    outcomes: list[str] = []
    for number, (needle, spread) in enumerate(KILL_POINTS, 1):
        alone = number % 2 == 0  # `kill -9 <main pid>` in even rounds, the whole process group in odd ones
        server = start_serve(live, data, extra_args=["--interval", "1h"], wait=False)
        try:
            assert server.wait_log(needle, timeout=WAIT), f"round {number}: no {needle!r}:\n{server.log_tail()}"
            time.sleep(rng.uniform(0.0, spread))
        finally:
            if alone:
                os.kill(server.pid, signal.SIGKILL)
                server.proc.wait(WAIT)
            else:
                server.kill9()
        finished = "Sync finished" in server.log_text()
        # restart against a source nobody answers for: what it serves is what the killed process left on disk
        try:
            checker = start_serve(_unreachable(), data, extra_args=["--interval", "1h"])
            try:
                _assert_clean(data)
                view = _check_served_view(checker, views, rng)
            finally:
                checker.kill9()
        finally:
            server.kill9()  # what may be left of the killed process group
        kind = "main process" if alone else "process group"
        outcomes.append(f"round {number} ({needle}+{spread}, {kind}): {view.name}{' (sync done)' if finished else ''}")
        # every round kills a sync from A to B, so start over from A: a round killed after B's versions were
        # stored but before they were published would leave the next sync nothing to download (no "Stored" line)
        if number < len(KILL_POINTS):
            shutil.rmtree(data)
            _copy_data(versions.data_a, data)
    print("\n".join(outcomes))
    # finally a sync runs to its end: B in full, every file over HTTP
    with start_serve(live, data, extra_args=["--interval", "1h"], workers=2) as server:
        _poll(lambda: _status(server)["tags"] == versions.b.tags, "the sync of B")
        _assert_clean(data)
        assert _check_served_view(server, views, rng, sample=0) is versions.b
        _assert_serves_all(server, versions.b.files)


def _assert_serves_all(server: ServeProcess, files: Files, clients: int = 4) -> None:
    """GET every path (``clients`` connections at once) and compare the bytes."""

    def fetch(paths: list[str]) -> list[str]:
        wrong = []
        with server.client() as client:
            for path in paths:
                response = client.get("/" + path)
                if response.status_code != 200 or response.content != files[path]:
                    wrong.append(f"{path}: {response.status_code} {response.content[:40]!r}")
        return wrong

    paths = sorted(files)
    with ThreadPoolExecutor(clients) as pool:
        wrong = [line for part in pool.map(fetch, [paths[i::clients] for i in range(clients)]) for line in part]
    assert wrong == [], f"{len(wrong)} of {len(paths)} files not served as synced: {wrong[:5]}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill9_of_the_main_process_alone_then_restart(
    small_layout: tuple[Path, Path, Files], serve_factory: ServeFactory, tmp_path: Path
) -> None:
    """``kill -9 <pid>`` as an operator types it (not the whole process group): a restart on the same data dir
    must come up, and the workers of the dead process must not outlive it."""
    layout, template, files = small_layout
    data = _copy_data(template, tmp_path / "data")
    source = [str(layout), "--oci-layout"]
    first = serve_factory(source, data, extra_args=["--interval", "1h"], workers=2)
    workers = psutil.Process(first.pid).children(recursive=True)
    assert workers, "granian started no worker process"
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait(WAIT)
    # (the serve_factory teardown SIGKILLs first's whole process group: orphans included)
    # another port: an orphaned worker still answering on the old one must not pass for the restarted server
    again = serve_factory(source, data, extra_args=["--interval", "1h"])
    path = next(iter(files))
    with again.client() as client:
        assert client.get("/" + path).content == files[path]
    assert again.running, again.log_tail()
    _poll(lambda: not any(_alive(worker) for worker in workers), "the dead server's workers to exit", timeout=30)


# -- 2. registry unreachable at start --------------------------------------------------------------------------


def _sync_state(server: ServeProcess) -> dict[str, Any]:
    """``/_specman/status``'s ``sync`` object: the sync loop's state as the main process last wrote it."""
    sync = _status(server).get("sync")
    assert isinstance(sync, dict), sync
    return sync


def _wait_failing(server: ServeProcess) -> dict[str, Any]:
    def failing() -> dict[str, Any] | None:
        sync = _sync_state(server)
        return sync if sync.get("state") == "failing" else None

    sync: dict[str, Any] = _poll(failing, "sync.state == 'failing' in /_specman/status")
    return sync


def _assert_failing_state(sync: dict[str, Any]) -> None:
    for key in (
        "state",
        "last_error",
        "last_error_reason",
        "consecutive_failures",
        "last_success",
        "last_started",
        "last_finished",
    ):
        assert key in sync, (key, sync)
    assert sync["state"] == "failing"
    assert isinstance(sync["last_error"], str) and sync["last_error"], sync
    assert "\n" not in sync["last_error"]
    assert sync["last_error_reason"] == "ListTagsFailed", sync
    assert isinstance(sync["consecutive_failures"], int) and sync["consecutive_failures"] >= 1, sync
    assert sync["last_success"] is None, sync
    assert sync["last_finished"], sync
    assert sync["last_started"] and sync["last_started"] <= sync["last_finished"], sync


def test_registry_down_with_data_serves_last_view(
    registry_factory: RegistryFactory, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    registry = registry_factory("plain")
    name = f"serve-proc/{uuid.uuid4().hex[:10]}"
    files = _files("A", _paths("d", 50))
    digest = _push(registry, name, "1.0.0", files, tmp_path)
    data = tmp_path / "data"
    assert _sync_once(_source(registry, name), data).returncode == 0
    registry.stop()
    server = serve_factory(_source(registry, name), data, extra_args=["--interval", "1h"])
    # at once: ready and serving, although the registry has not answered
    with server.client() as client:
        ready = client.get("/_specman/readyz")
        assert ready.status_code == 200, ready.text
        for path in list(files)[:10]:
            assert client.get("/" + path).content == files[path]
    assert _status(server)["tags"] == {"1.0.0": digest}
    sync = _wait_failing(server)
    _assert_failing_state(sync)
    with server.client() as client:
        assert client.get("/_specman/readyz").status_code == 200  # a failing sync does not make a served view unready
    assert "Sync failed" in server.log_text()


def test_registry_down_without_data_is_not_ready(serve_factory: ServeFactory, tmp_path: Path) -> None:
    server = serve_factory(_unreachable(), tmp_path / "data", extra_args=["--interval", "1h"])
    with server.client() as client:
        first = client.get("/_specman/readyz")
        assert first.status_code == 503
        assert "no generation" in first.text
        assert client.get("/some/file.json").status_code == 404
    sync = _wait_failing(server)
    _assert_failing_state(sync)
    with server.client() as client:
        after = client.get("/_specman/readyz")
    assert after.status_code == 503
    assert sync["last_error"] in after.text, after.text  # the 503 says why: the last sync error
    assert len(after.text.strip().splitlines()) == 1, after.text


def test_failed_sync_records_when_it_started(
    plain_registry: Registry, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    """A repository the registry does not know: the first reconcile fails at once (NAME_UNKNOWN, no retries), and
    the status says when it started and how long it ran, not only when it finished."""
    source = _source(plain_registry, f"serve-proc/no-such-{uuid.uuid4().hex[:10]}")
    server = serve_factory(source, tmp_path / "data", extra_args=["--interval", "1h"])
    sync = _wait_failing(server)
    assert sync["last_error_reason"] == "ListTagsFailed", sync
    assert sync["last_finished"], sync
    assert sync["last_started"] is not None and sync["last_started"] <= sync["last_finished"], sync
    assert sync["last_duration"] is not None, sync


# -- 3. TLS options ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Files]:
    """An OCI layout with one small version and a data dir synced from it (copy it before serving)."""
    work = tmp_path_factory.mktemp("small")
    files = _files("S", _paths("d", 20))
    layout = work / "layout"
    push_artifact(LayoutRepository(layout, create=True), _write_tree(work / "tree", files), "1.0.0")
    data = work / "data"
    proc = _sync_once([str(layout), "--oci-layout"], data)
    assert proc.returncode == 0, proc.stderr
    return layout, data, files


def _peer_certificate(port: int, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> x509.Certificate:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*ext.get_values_for_type(x509.DNSName), *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))}


def test_tls_own_certificate(
    small_layout: tuple[Path, Path, Files], serve_factory: ServeFactory, tmp_path: Path
) -> None:
    layout, template, files = small_layout
    own = make_certs(tmp_path / "own")
    data = _copy_data(template, tmp_path / "data")
    server = serve_factory(
        [str(layout), "--oci-layout"],
        data,
        extra_args=["--interval", "1h", "--tls-cert", str(own.server_cert), "--tls-key", str(own.server_key)],
        ca=own.ca_cert,
    )
    served = _peer_certificate(server.port, server.ssl_context())
    assert served == x509.load_pem_x509_certificate(own.server_cert.read_bytes())
    path = next(iter(files))
    with server.client() as client:
        assert client.get("/" + path).content == files[path]
    assert not (data / "tls" / "ca.crt").exists()  # no private CA generated when a certificate is given
    untrusting = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        _peer_certificate(server.port, untrusting)


def test_tls_generated_san_and_restart_reuses_ca(
    small_layout: tuple[Path, Path, Files], serve_factory: ServeFactory, tmp_path: Path
) -> None:
    layout, template, files = small_layout
    data = _copy_data(template, tmp_path / "data")
    source = [str(layout), "--oci-layout"]
    first = serve_factory(source, data, extra_args=["--interval", "1h", "--tls-san", "extra.example"])
    ca_pem = first.ca.read_bytes()
    trusted = ssl.create_default_context(cadata=ca_pem.decode())
    leaf = _peer_certificate(first.port, trusted)
    assert {"extra.example", "localhost", "127.0.0.1"} <= _sans(leaf)
    assert "specman-service.hubble-system.svc.cluster.local" in _sans(leaf)
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert leaf.issuer == ca.subject
    _peer_certificate(first.port, trusted, server_hostname="extra.example")  # verifies as extra.example
    with pytest.raises(ssl.SSLCertVerificationError):
        _peer_certificate(first.port, trusted, server_hostname="other.example")
    assert first.stop() == 0, first.log_tail()

    again = serve_factory(source, data, extra_args=["--interval", "1h", "--tls-san", "extra.example"])
    assert again.ca.read_bytes() == ca_pem  # the same CA: clients keep trusting it
    assert _peer_certificate(again.port, trusted) == leaf  # and the same certificate while it fits
    assert again.stop() == 0, again.log_tail()

    more = serve_factory(source, data, extra_args=["--interval", "1h", "--tls-san", "more.example"])
    assert more.ca.read_bytes() == ca_pem
    reissued = _peer_certificate(more.port, trusted, server_hostname="more.example")
    assert "more.example" in _sans(reissued) and reissued.issuer == ca.subject
    path = next(iter(files))
    with more.client() as client:
        assert client.get("/" + path).content == files[path]


def test_no_tls_serves_plain_http(
    small_layout: tuple[Path, Path, Files], serve_factory: ServeFactory, tmp_path: Path
) -> None:
    layout, template, files = small_layout
    data = _copy_data(template, tmp_path / "data")
    server = serve_factory([str(layout), "--oci-layout"], data, extra_args=["--interval", "1h"], tls=False)
    assert server.base.startswith("http://")
    path = next(iter(files))
    with server.client() as client:
        assert client.get("/_specman/readyz").status_code == 200
        assert client.get("/" + path).content == files[path]
    with pytest.raises(ssl.SSLError):
        _peer_certificate(server.port, ssl.create_default_context())
    assert not (data / "tls").exists()


# -- 4. bad configuration: exit 2, one line, nothing started ------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("bad")
    one, two = make_certs(work / "one"), make_certs(work / "two")
    (work / "auth-malformed").write_text("no-colon-here\n")
    (work / "empty").write_text("\n")
    return {
        "cert": one.server_cert,
        "key": one.server_key,
        "other_key": two.server_key,
        "auth": work / "auth-malformed",
        "empty": work / "empty",
        "missing": work / "does-not-exist.crt",
    }


BAD_CONFIGS: list[tuple[str, list[str], str, tuple[int, ...]]] = [
    # id, arguments (after the source and --data-dir), text the Error line must contain, exit codes
    ("unknown-flag", ["--no-such-flag"], "--no-such-flag", (2,)),
    ("interval-zero", ["--interval", "0"], "--interval", (2,)),
    ("interval-abc", ["--interval", "abc"], "--interval", (2,)),
    ("listen-nonsense", ["--listen", "nonsense"], "--listen", (2,)),
    ("tls-cert-missing", ["--tls-cert", "{missing}", "--tls-key", "{key}"], "--tls-cert", (2,)),
    ("tls-cert-without-key", ["--tls-cert", "{cert}"], "--tls-key", (2,)),
    ("no-tls-with-cert", ["--no-tls", "--tls-cert", "{cert}", "--tls-key", "{key}"], "--no-tls", (2,)),
    ("mismatched-key", ["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "mismatch", (1, 2)),
    ("basic-auth-malformed", ["--basic-auth-file", "{auth}"], "--basic-auth-file", (2,)),
    ("notify-token-empty", ["--notify-token-file", "{empty}"], "--notify-token-file", (2,)),
]


@pytest.mark.parametrize(("args", "needle", "codes"), [pytest.param(*c[1:], id=c[0]) for c in BAD_CONFIGS])
def test_bad_config_exits_with_one_line(
    bad_files: dict[str, Path], tmp_path: Path, args: list[str], needle: str, codes: tuple[int, ...]
) -> None:
    port = free_port()
    data = tmp_path / "data"
    argv = [arg.format(**{k: str(v) for k, v in bad_files.items()}) for arg in args]
    listen = [] if "--listen" in argv else ["--listen", f"127.0.0.1:{port}"]
    proc = run("serve", *_unreachable(), "--data-dir", str(data), *listen, *argv)
    assert proc.returncode in codes, (proc.returncode, proc.stderr)
    line = one_line_error(proc)
    assert needle in line, line
    assert "Syncing with OCI repo" not in proc.stderr and "Listening" not in proc.stderr
    assert not _listening(port)
    assert not data.exists(), sorted(p.name for p in data.iterdir())  # the data dir is not even created


def test_second_serve_on_a_locked_data_dir_exits(
    small_layout: tuple[Path, Path, Files], serve_factory: ServeFactory, tmp_path: Path
) -> None:
    layout, template, files = small_layout
    data = _copy_data(template, tmp_path / "data")
    first = serve_factory([str(layout), "--oci-layout"], data, extra_args=["--interval", "1h"])
    proc = run("serve", str(layout), "--oci-layout", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}")
    assert proc.returncode == 1, proc.stderr
    assert "in use" in one_line_error(proc)
    path = next(iter(files))
    with first.client() as client:
        assert client.get("/" + path).content == files[path]


# -- 5. disk full during a real sync ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted for this test (skipped when mounting is not permitted), unmounted at teardown."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def test_disk_full_during_sync_keeps_the_old_view(
    small_disk: Path, plain_registry: Registry, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    name = f"serve-proc/{uuid.uuid4().hex[:10]}"
    files_a = _files("A", _paths("d", 100))
    digest_a = _push(plain_registry, name, "1.0.0", files_a, tmp_path)
    data = small_disk / "data"
    source = _source(plain_registry, name)
    assert _sync_once(source, data).returncode == 0
    # B: 10 MiB that does not compress, more than the tmpfs has left
    big = {f"big/blob-{i}.bin": os.urandom(1 << 20) for i in range(10)}
    _push(plain_registry, name, "2.0.0", {**_files("B", _paths("d", 10)), **big}, tmp_path)

    proc = _sync_once(source, data)
    assert proc.returncode == 1, proc.stderr
    assert "disk full" in one_line_error(proc)
    assert _read_tree(data / "current" / "tree") == files_a
    _assert_clean(data)
    assert not list((data / "versions").glob("2.0.0@*"))

    # the same under serve: its sync fails on the full disk, the old view stays served and ready
    server = serve_factory(source, data, extra_args=["--interval", "1h"])
    assert server.wait_log("disk full", timeout=WAIT), server.log_tail()
    _poll(
        lambda: "Sync finished with failed tags" in server.log_text() or "Sync failed" in server.log_text(),
        "the end of the failing sync",
    )
    with server.client() as client:
        assert client.get("/_specman/readyz").status_code == 200
        for path in list(files_a)[:20]:
            assert client.get("/" + path).content == files_a[path]
        assert client.get("/big/blob-0.bin").status_code == 404
    assert _status(server)["tags"] == {"1.0.0": digest_a}
    _assert_clean(data)
    assert "Traceback" not in server.log_text()
    sync = _sync_state(server)
    assert sync["state"] == "failing" and "disk full" in (sync["last_error"] or ""), sync


# -- 6. graceful shutdown ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully(
    small_layout: tuple[Path, Path, Files], tmp_path: Path, signum: signal.Signals
) -> None:
    layout, template, _ = small_layout
    data = _copy_data(template, tmp_path / "data")
    server = start_serve([str(layout), "--oci-layout"], data, extra_args=["--interval", "1h"], workers=2)
    try:
        with server.client() as client:
            assert client.get("/_specman/readyz").status_code == 200
        server.proc.send_signal(signum)
        code = server.wait(timeout=WAIT)
    finally:
        server.kill9()
    assert code == 0, server.log_tail()
    assert "Stopping" in server.log_text()
    assert "Traceback" not in server.log_text()
    assert not _listening(server.port)
    with Store(data):  # the data dir lock was released
        pass


def test_sigterm_during_sync_finishes_cleanly(
    small_versions: Versions, fault_proxy_factory: FaultProxyFactory, tmp_path: Path
) -> None:
    """SIGTERM while a sync is downloading (the registry's blobs held back by a proxy): exit 0 once the sync is
    over, and what is left on disk is one complete view."""
    proxy = fault_proxy_factory(small_versions.registry)
    held = proxy.add_fault(Fault.delay(r"^GET /v2/.+/blobs/sha256:", seconds=BLOB_HOLD, times=None))
    data = _copy_data(small_versions.data_a, tmp_path / "data")
    server = start_serve([f"{proxy.host}/{small_versions.name}", "--plain-http"], data, extra_args=["--interval", "1h"])
    try:
        _poll(lambda: held.hits >= 1, "a blob download held by the proxy")
        if "Sync finished" in server.log_text():
            pytest.skip(f"the server took longer than the {BLOB_HOLD} s hold to start: no sync left to interrupt")
        server.proc.send_signal(signal.SIGTERM)
        code = server.wait(timeout=WAIT)
    finally:
        server.kill9()
    log = server.log_text()
    assert code == 0, server.log_tail()
    assert "Stopping" in log and "Traceback" not in log
    assert "Sync finished" in log[log.index("Stopping") :], server.log_tail()  # the sync in progress ran to its end
    _assert_clean(data)
    checker = start_serve(_unreachable(), data, extra_args=["--interval", "1h"])
    try:
        _check_served_view(checker, [small_versions.a, small_versions.b], random.Random(0))
    finally:
        checker.kill9()
