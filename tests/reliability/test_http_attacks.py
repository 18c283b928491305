"""Case 5 — HTTP attacks on ``serve`` and ``console``: traversal, symlinks out, huge headers, slow clients and
thousands of connections held open.

* every traversal variant (``..``, ``%2e%2e``, ``%2f``, double encoding, backslashes, NUL, overlong UTF-8, the
  per-version paths, symlinks in the published tree pointing out of it) is answered 4xx without a byte of the
  files around the tree (``/etc/passwd``, the TLS keys, a secret next to the data dir);
* huge headers (one of 1 MiB, a thousand small ones) are refused, nothing crashes;
* slow-loris clients (a header byte now and then) and N connections held open (TCP only, TLS done but no
  request, half a request) do not stop other clients from being served, and the servers' memory stays bounded;
  afterwards everything answers as before.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psutil
import pytest

from specman.oci import LayoutRepository, push_artifact
from tests.fixtures.console import start_console
from tests.fixtures.serve import start_serve
from tests.reliability._common import percentile, wait_for
from tests.reliability.conftest import Results, Scale, raise_nofile, scales
from tests.test_serve_process import _files, _paths, _write_tree

SECRET = "top-secret-next-to-the-data-dir-4711"
FORBIDDEN = (b"root:x:0:0", b"PRIVATE KEY", SECRET.encode(), b'"pid"')
TRAVERSALS = [
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
    "/%25252e%25252e/etc/passwd",
    "/..\\..\\..\\..\\etc\\passwd",
    "/..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/%c0%af..%c0%af..%c0%afetc/passwd",
    "/%e0%80%ae%e0%80%ae/etc/passwd",
    "/d00/s0/f00000.json%00.txt",
    "/%00/../../etc/passwd",
    "/./././../../secret.txt",
    "/d00/../../secret.txt",
    "/.%2e/.%2e/.%2e/secret.txt",
    "//etc/passwd",
    "/tls/ca.key",
    "/../tls/server.key",
    "/../../tls/ca.key",
    "/../lock",
    "/_specman/versions/1.0.0/../../../../etc/passwd",
    "/_specman/versions/..%2f..%2f..%2fetc/passwd",
    "/_specman/versions/%2e%2e/%2e%2e/tls/ca.key",
    "/_specman/versions/1.0.0/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/out-etc/passwd",
    "/out-secret",
    "/d00/out-key",
    "/_specman/versions/1.0.0/out-etc/passwd",
    "/v1/../../../../etc/passwd",
    "/openapi.json/../../../../etc/passwd",
    "/healthz%2f..%2f..%2fetc%2fpasswd",
]


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    port: int
    ssl: ssl.SSLContext | None
    pids: tuple[int, ...]

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.base, verify=self.ssl or True, trust_env=False, timeout=30, **kw)  # type: ignore[arg-type]

    def raw(self, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request whose target is sent byte for byte; (0, reason) when the server closes the connection."""
        import http.client

        conn: http.client.HTTPConnection
        if self.ssl is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl, timeout=30)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest("GET", target, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 0, repr(exc).encode()
        finally:
            conn.close()

    def rss(self) -> int:
        """Resident memory of the server and all its processes (bytes)."""
        total = 0
        for pid in self.pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                for p in [proc, *proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += p.memory_info().rss
        return total


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    """``serve`` over a tree with symlinks in and out, and ``console``; both HTTPS with their generated CA."""
    raise_nofile(30_000)  # the servers inherit it: 10,000 held connections need more than 1,024 descriptors
    work = tmp_path_factory.mktemp("attacks")
    (work / "secret.txt").write_text(SECRET)
    files = _files("H", _paths("d", 50))
    tree = _write_tree(work / "tree", files)
    (tree / "link-in").symlink_to("d00")
    layout = work / "layout"
    push_artifact(LayoutRepository(layout, create=True), tree, "1.0.0")
    data = work / "data"
    server = start_serve([str(layout), "--oci-layout"], data, extra_args=["--interval", "1h"])
    with server.client() as client:  # healthy is not ready: wait for the first generation
        assert wait_for(lambda: client.get("/readyz").status_code == 200, 120), server.log_tail()
    # a published tree tampered with: symlinks pointing out of it (the server must not follow them)
    published = (data / "current").resolve() / "tree"
    (published / "out-etc").symlink_to("/etc")
    (published / "out-secret").symlink_to(work / "secret.txt")
    (published / "d00" / "out-key").symlink_to(data / "tls" / "ca.key")
    version = next((data / "versions").iterdir()) / "tree"
    (version / "out-etc").symlink_to("/etc")
    console = start_console(work / "console")
    try:
        yield {
            "serve": Target("serve", server.base, server.port, server.ssl_context(), (server.pid,)),
            "console": Target(
                "console",
                console.base,
                console.port,
                ssl.create_default_context(cafile=str(console.ca)),
                (console.proc.pid,) if console.proc else (),
            ),
        }
    finally:
        server.stop()
        console.stop()


def _leaks(body: bytes) -> bool:
    return any(marker in body for marker in FORBIDDEN)


@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 5)))
@pytest.mark.parametrize("name", ["serve", "console"])
def test_traversal_and_symlinks_out(targets: dict[str, Target], name: str, results: Results, scale: Scale) -> None:
    target = targets[name]
    result = results(f"5a. HTTP attacks on {name}: traversal, symlinks out, huge headers", scale.name)
    statuses: dict[int, int] = {}
    headers_sets = {
        "1 MiB header": {"X-Big": "a" * (1 << 20)},
        "1,000 headers": {f"X-H{i}": "b" * 64 for i in range(1000)},
        "64 KiB cookie": {"Cookie": "Authorization=" + "c" * 65536},
    }
    for _ in range(scale.trials):
        for path in TRAVERSALS:
            status, body = target.raw(path)
            statuses[status] = statuses.get(status, 0) + 1
            result.trial(400 <= status < 500 and not _leaks(body), f"{path}: {status} {body[:60]!r}")
        for label, headers in headers_sets.items():
            status, body = target.raw("/healthz", headers)
            result.trial(status == 0 or 400 <= status < 500 or status == 200, f"{label}: {status} {body[:60]!r}")
        with target.client() as client:  # still alive, still serving
            result.trial(client.get("/healthz").status_code == 200, "not serving after the attacks")
    answers = ", ".join(f"{k or 'closed'}×{v}" for k, v in sorted(statuses.items()))
    result.figures = {"variants": len(TRAVERSALS) + len(headers_sets), "answers": answers}
    result.check()


def _open_held(port: int, count: int, tls_context: ssl.SSLContext | None, partial: bytes) -> list[socket.socket]:
    """``count`` connections held open: raw TCP (nothing sent), plus a few with TLS done and ``partial`` sent."""
    held: list[socket.socket] = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        if tls_context is not None and i % 50 == 0:  # every 50th: TLS done, then half a request
            try:
                tls = tls_context.wrap_socket(sock, server_hostname="127.0.0.1")
                tls.sendall(partial)
                sock = tls
            except OSError:
                sock.close()
                continue
        elif tls_context is None and i % 2 == 0:
            with contextlib.suppress(OSError):
                sock.sendall(partial)
        held.append(sock)
    return held


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scale", scales(Scale("short", 1, size=1000), Scale("long", 2, size=10_000)))
@pytest.mark.parametrize("name", ["serve", "console"])
def test_held_connections(targets: dict[str, Target], name: str, results: Results, scale: Scale) -> None:
    raise_nofile(scale.size * 2 + 1000)
    target = targets[name]
    result = results(f"5b. HTTP attacks on {name}: {scale.size:,} held connections + slow clients", scale.name)
    latencies: list[float] = []
    growth: list[float] = []
    opened: list[int] = []
    for _ in range(scale.trials):
        before = target.rss()
        held = _open_held(target.port, scale.size, target.ssl, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        opened.append(len(held))
        try:
            # slow-loris: keep trickling header bytes on the TLS ones while others are served
            served = 0
            with target.client() as client:
                for _ in range(40):
                    for sock in held[:: max(1, len(held) // 20)]:
                        with contextlib.suppress(OSError):
                            sock.send(b"a")
                    start = time.monotonic()
                    try:
                        ok = client.get("/healthz").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies.append(time.monotonic() - start)
                    served += ok
            during = target.rss()
        finally:
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.close()
        growth.append((during - before) / 2**20)
        time.sleep(1.0)
        with target.client() as client:
            after_ok = client.get("/healthz").status_code == 200
        held_all = len(held) >= scale.size * 0.99
        result.trial(
            served == 40 and after_ok and held_all and growth[-1] < 1024 and max(latencies) < 10,
            f"{len(held)} held, {served}/40 served, after {after_ok}, +{growth[-1]:.0f} MiB, "
            f"max {max(latencies):.2f} s",
        )
    result.figures = {
        "held open": f"{min(opened):,}",
        "other clients' latency p50/max": f"{percentile(latencies, 0.5) * 1000:.0f}/{max(latencies) * 1000:.0f} ms",
        "memory growth (max)": f"{max(growth):.0f} MiB",
    }
    result.check()
