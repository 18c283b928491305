"""``specman serve``: real server processes (granian, TLS from the generated CA) over data dirs synced from a layout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx
import pytest

from specman.oci import LayoutRepository, push_artifact
from specman.server.app import create_app
from tests.fixtures.serve import ServeProcess, start_serve

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "manifests"
ODD_NAME = "<i>&x'.txt"
SECRET = "alice:s3cret-pw"


def _sync(layout: Path, data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "specman", "sync", str(layout), "--oci-layout", "--data-dir", str(data), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _start(layout: Path, data: Path, *extra: str, workers: int = 1) -> ServeProcess:
    return start_serve([str(layout), "--oci-layout"], data, extra_args=["--interval", "1h", *extra], workers=workers)


def _stop(server: ServeProcess) -> None:
    assert server.stop(timeout=15) == 0, server.log_tail()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    work = tmp_path_factory.mktemp("serve")
    newer = work / "4.5.15"
    shutil.copytree(EXAMPLES / "4.5.15", newer)
    (newer / "odd").mkdir()
    (newer / "odd" / ODD_NAME).write_text("odd\n")
    layout_path = work / "layout"
    layout = LayoutRepository(layout_path, create=True)
    push_artifact(layout, EXAMPLES / "4.5.13", "4.5.13")
    push_artifact(layout, newer, "4.5.15")
    data_a, data_b = work / "a", work / "b"
    _sync(layout_path, data_a)
    _sync(layout_path, data_b)
    (data_a / "current" / "tree" / "leak").symlink_to("/etc/passwd")
    auth = work / "auth"
    auth.write_text(SECRET + "\n")
    first = _start(layout_path, data_a, workers=2)
    try:
        second = _start(layout_path, data_b, "--basic-auth-file", str(auth))
    except BaseException:
        _stop(first)
        raise
    try:
        yield first, second
    finally:
        _stop(first)
        _stop(second)


def test_file_bytes_etag_and_head(servers: tuple[ServeProcess, ServeProcess]) -> None:
    a, b = servers
    with a.client() as client, b.client(auth=tuple(SECRET.split(":"))) as other:
        first = client.get("/version.json")
        assert first.status_code == 200
        assert first.content == (EXAMPLES / "4.5.15" / "version.json").read_bytes()
        assert first.headers["content-type"] == "application/json; charset=utf-8"
        assert first.headers["content-length"] == str(len(first.content))
        etag = first.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert client.get("/version.json").headers["etag"] == etag
        assert other.get("/version.json").headers["etag"] == etag  # another process on another data dir
        assert "last-modified" in first.headers
        head = client.head("/version.json")
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
        assert head.headers["content-length"] == str(len(first.content))
        assert client.get("/version.json", headers={"If-None-Match": etag}).status_code == 304
        assert client.get("/profiles/aws-infra.yaml").headers["content-type"] == "application/yaml; charset=utf-8"
        assert client.get("/release-notes.md").headers["content-type"] == "text/markdown; charset=utf-8"
        version = client.get("/_specman/versions/4.5.13/release-notes.md")
        assert version.content == (EXAMPLES / "4.5.13" / "release-notes.md").read_bytes()
        assert client.get("/_specman/versions/9.9.9/release-notes.md").status_code == 404
        assert client.get("/missing.json").status_code == 404


def test_ranges(servers: tuple[ServeProcess, ServeProcess]) -> None:
    a, _ = servers
    body = (EXAMPLES / "4.5.15" / "version.json").read_bytes()
    with a.client() as client:
        one = client.get("/version.json", headers={"Range": "bytes=2-9"})
        assert one.status_code == 206 and one.content == body[2:10]
        assert one.headers["content-range"] == f"bytes 2-9/{len(body)}"
        multi = client.get("/version.json", headers={"Range": "bytes=0-3,20-29"})
        assert multi.status_code == 206
        assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert body[0:4] in multi.content and body[20:30] in multi.content
        assert f"Content-Range: bytes 20-29/{len(body)}".encode() in multi.content
        assert int(multi.headers["content-length"]) == len(multi.content)
        unsatisfiable = client.get("/version.json", headers={"Range": f"bytes={len(body) + 10}-"})
        assert unsatisfiable.status_code == 416 and unsatisfiable.headers["content-range"] == f"bytes */{len(body)}"


def test_directories(servers: tuple[ServeProcess, ServeProcess]) -> None:
    a, _ = servers
    with a.client() as client:
        redirect = client.get("/odd")
        assert redirect.status_code == 301 and redirect.headers["location"] == "/odd/"
        page = client.get("/odd/")
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "&lt;i&gt;&amp;x&#x27;.txt" in page.text and ODD_NAME not in page.text
        listing = client.get("/", headers={"Accept": "application/json"}).json()
        names = {item["name"]: item for item in listing}
        assert names["manifests"]["type"] == "directory"
        assert names["version.json"]["type"] == "file"
        assert names["version.json"]["size"] == len((EXAMPLES / "4.5.15" / "version.json").read_bytes())
        assert "leak" not in names  # a symlink leading out of the tree is not listed...
        assert client.get("/leak").status_code == 404  # ...nor served
        odd = client.get("/odd/" + quote(ODD_NAME))
        assert odd.status_code == 200 and odd.text == "odd\n"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/../etc/passwd", 400),
        ("/%2e%2e/etc/passwd", 400),
        ("/manifests%2f..%2f..%2fetc", 400),
        ("/a%00b", 400),
        ("/a\\..\\b", 404),  # one name holding backslashes (as on any POSIX file system): no such file
        ("/%c0%ae%c0%ae/x", 404),  # the bytes C0 AE are no '.': a name that does not exist
    ],
)
def test_traversal_is_refused(servers: tuple[ServeProcess, ServeProcess], target: str, expected: int) -> None:
    a, _ = servers
    status, body = a.raw(target)
    assert status == expected
    assert b"root:" not in body


def test_probes_status_and_methods(servers: tuple[ServeProcess, ServeProcess]) -> None:
    a, _ = servers
    with a.client() as client:
        assert client.get("/_specman/healthz").status_code == 200
        assert client.get("/_specman/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200  # aliases: the tree has no such names
        assert client.get("/readyz").status_code == 200
        status = client.get("/_specman/status").json()
        assert status["generation"] == 1 and status["data_dir"] == str(a.data_dir.resolve())
        assert set(status["tags"]) == {"4.5.13", "4.5.15"}
        post = client.post("/version.json", content=b"x")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    for server in servers:  # the app answers granian's lifespan scope: no warning in the operators' log
        assert "Lifespan errored" not in server.log_text(), server.log_tail()


def test_lifespan_startup_and_shutdown(tmp_path: Path) -> None:
    app = create_app(tmp_path, basic_auth=("alice", "pw"))
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    anyio.run(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_basic_auth(servers: tuple[ServeProcess, ServeProcess]) -> None:
    _, b = servers
    with b.client() as client:
        denied = client.get("/version.json")
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic ")
        assert client.get("/version.json", auth=("alice", "wrong")).status_code == 401
        assert client.get("/_specman/status").status_code == 401
        assert client.get("/_specman/healthz").status_code == 200
        assert client.get("/_specman/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/version.json", auth=("alice", "s3cret-pw")).status_code == 200


def test_readyz_without_generation_and_bad_flags(tmp_path: Path) -> None:
    async def probe() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=create_app(tmp_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/_specman/readyz")).status_code, (await client.get("/version.json")).status_code

    assert anyio.run(probe) == (503, 404)
    bad = subprocess.run(
        [sys.executable, "-m", "specman", "serve", "x", "--data-dir", str(tmp_path), "--listen", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "--listen" in bad.stderr
