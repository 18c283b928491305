"""Conformance with nginx, the server specman replaces: one generated tree served by both, the same requests to both.

The tree (``tests/fixtures/conformance.py``) holds odd names, index pages, empty files, symlinks inside the tree,
compressed files, a path whose encoded form is over 4,096 characters and a large file.  nginx serves the source
directory as the old SCAR did (Debian's ``mime.types``, ``autoindex on``); specman serves the same tree pushed to an
OCI layout and synced.  Each request of ``CASES`` goes to both, sent byte for byte (raw UTF-8 targets, no ``Host``);
the status, the headers that matter (``Content-Type``'s media type, ``Content-Length``, ``Content-Range``, the
resolved ``Location``, ``Accept-Ranges``) and the body must be equal — except where ``INTENDED`` says why not.
Preconditions use each server's own validators (the ETags differ by design: nginx derives them from mtime and size,
specman from the content; the mtimes differ: the pushed archive carries none).

``test_wget_mirror_gets_every_file`` mirrors specman with ``wget --mirror`` (Debian's wget), as a client of the old
SCAR would, and compares the mirror with the source tree byte for byte.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urljoin

import pytest

from specman.oci import LayoutRepository, push_artifact
from tests.fixtures.conformance import LARGE_SIZE, LONG_DIRS, ODD_NAMES, build_tree, tree_files
from tests.fixtures.nginx import ScarNginx
from tests.fixtures.serve import ServeProcess, poll, start_serve

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (scripts/test-all)")

OLD = "Thu, 01 Jan 1970 00:00:00 GMT"
# specman's own types where nginx's mime.types has none (nginx: application/octet-stream) or labels the bytes wrong
SPECMAN_TYPES = {".yaml": "application/yaml", ".tgz": "application/gzip", ".gz": "application/gzip"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Server:
    name: str
    port: int

    def send(self, request: bytes, *, head: bool = False) -> Reply:
        """One request sent exactly as given (HTTP/1.x), on its own connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            response = HTTPResponse(sock, method="HEAD" if head else "GET")
            response.begin()
            body = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, headers, body)

    def get(self, target: str | bytes, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
        raw_target = target.encode("utf-8") if isinstance(target, str) else target
        lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
        return self.send(b"\r\n".join(lines) + b"\r\n\r\n", head=method == "HEAD")

    def validators(self, target: str) -> tuple[str, str]:
        reply = self.get(target)
        assert reply.status == 200, (self.name, target, reply.status)
        return reply.headers["etag"], reply.headers["last-modified"]


Headers = Callable[[str, str], dict[str, str]]  # (this server's ETag, Last-Modified) -> request headers


@dataclass(frozen=True)
class Case:
    id: str
    target: str | bytes
    headers: Headers | dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    validators_of: str = "/readme.txt"
    raw: bytes | None = None  # a whole request sent as is instead of method + target + headers


def _odd(name: str) -> str:
    return "/odd/" + quote(name, safe="")


LONG = "/" + "/".join(quote(d) for d in LONG_DIRS) + "/long-ending.txt"
R = "/readme.txt"

CASES: list[Case] = [
    # files, symlinks, types
    *(Case(f"file {t}", t) for t in ("/plain.json", "/values.yaml", R, "/empty.txt", "/large.bin", "/healthz")),
    *(Case(f"file {t}", t) for t in ("/archive.tgz", "/bundle.tar.gz", "/data.json.gz", "/metrics/index.txt")),
    Case("head", R, method="HEAD"),
    Case("head large", "/large.bin", method="HEAD"),
    Case("symlink to a file", "/alias.json"),
    Case("through a symlinked directory", "/latest/page.html"),
    Case("symlink to a parent's file", "/odd/link-to-large"),
    Case("empty file in a subdirectory", "/empty-dir-sibling/empty.json"),
    # every odd name at its percent-encoded path, and raw UTF-8 targets
    *(Case(f"odd {name!r}", _odd(name)) for name in ODD_NAMES),
    Case("lower-case escapes", "/odd/back%5cslash.txt"),
    Case("raw UTF-8 target", "/odd/ünïcödé.txt".encode()),
    Case("raw UTF-8 target (CJK)", "/odd/日本語.txt".encode()),
    Case("raw backslash", b"/odd/back\\slash.txt"),
    Case("long path (over 4096 encoded characters)", LONG),
    # directories
    Case("root listing", "/"),
    Case("listing", "/odd/"),
    Case("empty directory", "/empty-dir/"),
    Case("index page", "/site/"),
    Case("index page (second)", "/docs/"),
    Case("index page through a symlink", "/latest/"),
    Case("listing below an index page", "/site/sub/"),
    Case("directory without slash", "/site"),
    Case("directory without slash, query kept", "/site?x=1"),
    Case("directory without slash, odd name", "/empty-dir"),
    Case("index page with a query", "/site/?x=1"),
    Case("the tree's metrics/ directory wins", "/metrics"),
    Case("the tree's metrics/ listing", "/metrics/"),
    Case("readyz is specman's where the tree has none", "/readyz"),
    Case("file with a trailing slash", "/plain.json/"),
    Case("missing", "/missing.json"),
    Case("missing directory", "/nope/"),
    # ranges (RFC 9110 §14)
    *(
        Case(f"range {spec}", R, {"Range": spec})
        for spec in (
            "bytes=0-9",
            "bytes=10-",
            "bytes=-10",
            "bytes=0-0",
            "bytes=-99999",
            "bytes=9590-99999",
            "bytes=0-9,20-29",
            "bytes=20-29,0-9",
            "bytes=0-9,5-14",
            "bytes=9600-",
            "bytes=99999-",
            "bytes=-0",
            "bytes=5-4",
            "bytes=x-y",
            "items=0-9",
        )
    ),
    Case("range on an empty file", "/empty.txt", {"Range": "bytes=0-"}),
    Case("range of a large file", "/large.bin", {"Range": f"bytes={LARGE_SIZE - 100}-"}),
    Case("range with HEAD", R, {"Range": "bytes=0-9"}, method="HEAD"),
    # preconditions (RFC 9110 §13), each server with its own validators
    Case("If-None-Match own", R, lambda e, m: {"If-None-Match": e}),
    Case("If-None-Match in a list", R, lambda e, m: {"If-None-Match": f'"x", {e}'}),
    Case("If-None-Match weak form", R, lambda e, m: {"If-None-Match": "W/" + e}),
    Case("If-None-Match other", R, {"If-None-Match": '"other"'}),
    Case("If-None-Match *", R, {"If-None-Match": "*"}),
    Case("If-Modified-Since own", R, lambda e, m: {"If-Modified-Since": m}),
    Case("If-Modified-Since old", R, {"If-Modified-Since": OLD}),
    Case("If-Modified-Since invalid", R, {"If-Modified-Since": "yesterday"}),
    Case(
        "If-None-Match other + If-Modified-Since own", R, lambda e, m: {"If-None-Match": '"x"', "If-Modified-Since": m}
    ),
    Case("If-Match own", R, lambda e, m: {"If-Match": e}),
    Case("If-Match in a list", R, lambda e, m: {"If-Match": f'"x", {e}'}),
    Case("If-Match *", R, {"If-Match": "*"}),
    Case("If-Match other", R, {"If-Match": '"other"'}),
    Case("If-Match weak form", R, lambda e, m: {"If-Match": "W/" + e}),
    Case("If-Unmodified-Since own", R, lambda e, m: {"If-Unmodified-Since": m}),
    Case("If-Unmodified-Since old", R, {"If-Unmodified-Since": OLD}),
    Case("If-Match other + If-None-Match own", R, lambda e, m: {"If-Match": '"x"', "If-None-Match": e}),
    Case("If-Match own + If-None-Match own", R, lambda e, m: {"If-Match": e, "If-None-Match": e}),
    Case("If-Unmodified-Since old + If-Match own", R, lambda e, m: {"If-Match": e, "If-Unmodified-Since": OLD}),
    Case("If-Range own ETag", R, lambda e, m: {"Range": "bytes=0-9", "If-Range": e}),
    Case("If-Range other ETag", R, {"Range": "bytes=0-9", "If-Range": '"other"'}),
    Case("If-Range own date", R, lambda e, m: {"Range": "bytes=0-9", "If-Range": m}),
    Case("If-Range old date", R, {"Range": "bytes=0-9", "If-Range": OLD}),
    Case("resumed download, changed file", R, {"Range": "bytes=100-", "If-Match": '"old-version"'}),
    Case("If-None-Match on an index page", "/site/", lambda e, m: {"If-None-Match": e}, validators_of="/site/"),
    # methods, bad paths, the request line
    Case("POST", R, method="POST"),
    Case("DELETE", R, method="DELETE"),
    Case("dot-dot", "/../../etc/passwd"),
    Case("encoded dot-dot", "/%2e%2e/%2e%2e/etc/passwd"),
    Case("dot-dot inside the tree", "/odd/../plain.json"),
    Case("encoded slash", "/odd%2Fback%5Cslash.txt"),
    Case("NUL", "/plain.json%00.txt"),
    Case("HTTP/1.1 without Host", "", raw=b"GET /plain.json HTTP/1.1\r\nConnection: close\r\n\r\n"),
    Case("HTTP/1.0 without Host", "", raw=b"GET /plain.json HTTP/1.0\r\n\r\n"),
    Case("two Host headers", "", raw=b"GET /plain.json HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"),
]

# What differs from nginx on purpose: case id -> why.  Statuses must still match unless the entry says "status".
LISTING = "listing body: specman's own autoindex page (also lists dot files; JSON with Accept: application/json)"
INTENDED: dict[str, str] = {
    "root listing": LISTING,
    "listing": LISTING,
    "empty directory": LISTING,
    "listing below an index page": LISTING,
    "the tree's metrics/ listing": LISTING,
    "readyz is specman's where the tree has none": "status: /readyz is specman's probe where the tree has no readyz",
    "range bytes=0-9,5-14": "body: overlapping ranges are coalesced into one part (RFC 9110 §14.3 allows it)",
    "range bytes=20-29,0-9": "body: ranges are sent in ascending order, coalesced (RFC 9110 §14.3 allows it)",
    "range bytes=0-9,20-29": "body: multipart boundaries are random in both",
    "range with HEAD": "status: Range is defined for GET only (RFC 9110 §14.2): HEAD answers 200",
    "encoded slash": "status: an encoded slash would change the path's structure: 400 (nginx decodes it to /)",
    "If-Unmodified-Since old + If-Match own": "status: If-Unmodified-Since is not evaluated when If-Match is "
    "present (RFC 9110 §13.2.2; nginx evaluates both)",
    "dot-dot inside the tree": "status: any '..' segment is refused (400), even one that stays inside the tree "
    "(nginx resolves it; clients normalise dot segments before sending)",
}


def _media(reply: Reply) -> str:
    return reply.headers.get("content-type", "").split(";")[0].strip()


def _compare(case: Case, target: str | bytes, nginx: Reply, specman: Reply) -> list[str]:
    """The differences that matter between the two answers to one request."""
    problems: list[str] = []
    if nginx.status != specman.status:
        return [f"status {nginx.status} (nginx) != {specman.status} (specman)"]
    if nginx.status >= 400:
        return []  # error pages: their bodies are each server's own
    text_target = target.decode("utf-8", "replace") if isinstance(target, bytes) else target
    path = text_target.split("?")[0]
    expected_type = _media(nginx)
    for suffix, kind in SPECMAN_TYPES.items():
        if path.endswith(suffix) and nginx.status in (200, 206) and "multipart" not in expected_type:
            expected_type = kind
    if nginx.status in (200, 206) and _media(specman) != expected_type:
        problems.append(f"Content-Type {_media(specman)!r}, expected {expected_type!r} (nginx {_media(nginx)!r})")
    for name in ("content-range", "accept-ranges"):
        if nginx.headers.get(name) != specman.headers.get(name) and not (
            name == "accept-ranges" and nginx.status != 200
        ):
            problems.append(f"{name}: {nginx.headers.get(name)!r} (nginx) != {specman.headers.get(name)!r}")
    if "location" in nginx.headers or "location" in specman.headers:
        base = "http://127.0.0.1" + path
        nginx_location = urljoin(base, nginx.headers.get("location", "")).split("//", 1)[1].split("/", 1)[1]
        specman_location = urljoin(base, specman.headers.get("location", "")).split("//", 1)[1].split("/", 1)[1]
        if nginx_location != specman_location:
            problems.append(f"Location {nginx_location!r} (nginx) != {specman_location!r}")
    if nginx.status in (200, 206) and "multipart" not in expected_type and nginx.body != specman.body:
        problems.append(f"body of {len(specman.body)} bytes differs from nginx's {len(nginx.body)}")
    if nginx.status == 200 and case.method != "HEAD" and len(specman.body) != int(specman.headers["content-length"]):
        problems.append("Content-Length does not match the body")
    return problems


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, Path]]:
    work = tmp_path_factory.mktemp("conformance")
    tree = build_tree(work / "tree")
    layout = LayoutRepository(work / "layout", create=True)
    push_artifact(layout, tree, "1.0.0")
    nginx = ScarNginx(work / "nginx", tree, mime_types=True).start()
    serve: ServeProcess | None = None
    try:
        serve = start_serve(
            [str(work / "layout"), "--oci-layout"], work / "data", extra_args=["--interval", "1h"], tls=False
        )
        with serve.client() as client:  # live is not ready: wait for the first generation
            assert poll(lambda: client.get("/_specman/readyz").status_code == 200, 60), serve.log_tail()
        yield Server("nginx", nginx.port), Server("specman", serve.port), tree
    finally:
        if serve is not None:
            serve.stop()
        nginx.stop()


def _request(server: Server, case: Case) -> Reply:
    if case.raw is not None:
        return server.send(case.raw)
    headers = case.headers if isinstance(case.headers, dict) else case.headers(*server.validators(case.validators_of))
    return server.get(case.target, headers, case.method)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_answer_as_nginx(servers: tuple[Server, Server, Path], case: Case) -> None:
    nginx, specman, _ = servers
    a, b = _request(nginx, case), _request(specman, case)
    problems = _compare(case, case.target, a, b)
    if case.id in INTENDED:
        reason = INTENDED[case.id]
        if reason.startswith("status"):
            assert problems and problems[0].startswith("status"), f"{case.id}: expected a difference ({reason})"
        else:
            assert a.status == b.status, (case.id, a.status, b.status)
        return
    assert not problems, f"{case.id}: {problems}"


def test_intended_differences_are_what_specman_promises(servers: tuple[Server, Server, Path]) -> None:
    """The listed differences, checked for what specman answers instead."""
    _, specman, _ = servers
    assert specman.get("/readyz").status == 200 and specman.get("/_specman/readyz").status == 200
    assert specman.get("/healthz").body == b"the tree's own healthz file\n"  # the tree wins over the alias
    assert specman.get("/_specman/healthz").body == b"ok\n"
    assert specman.get(R, {"Range": "bytes=0-9,5-14"}).headers["content-range"] == "bytes 0-14/9600"
    assert specman.get(R, {"Range": "bytes=0-9"}, method="HEAD").status == 200
    assert specman.get("/odd%2Fback%5Cslash.txt").status == 400
    listing = specman.get("/odd/", {"Accept": "application/json"})
    names = {item["name"] for item in json.loads(listing.body)}
    assert names >= {*ODD_NAMES, "link-to-large"}  # dot files too (nginx hides them)
    page = specman.get("/site/")
    again = specman.get("/site/", {"If-None-Match": page.headers["etag"]})
    assert again.status == 304  # an index page is the file: its ETag and preconditions


def test_listings_hide_nothing_nginx_shows(servers: tuple[Server, Server, Path]) -> None:
    """Every link of nginx's autoindex pages is in specman's listing of the same directory."""
    nginx, specman, _ = servers
    for directory in ("/", "/odd/", "/empty-dir/", "/site/sub/", "/metrics/", "/" + quote(LONG_DIRS[0]) + "/"):
        hrefs = [re.findall(rb'href="([^"?]+)"', s.get(directory).body) for s in (nginx, specman)]
        nginx_links, specman_links = ({unquote_to_bytes(html.unescape(h.decode())) for h in links} for links in hrefs)
        assert nginx_links <= specman_links, (directory, nginx_links - specman_links)


def _wget_mirror(server: Server, mirror: Path) -> dict[str, Path]:
    """``wget --mirror`` of ``server`` into ``mirror``: the URL path of every file fetched → where wget saved it
    (wget's own log says; it decodes some names twice, e.g. ``per%25cent`` is saved as ``per\\xcent``)."""
    proc = subprocess.run(
        [
            "wget",
            "--mirror",
            "--no-host-directories",
            "--no-parent",
            "--restrict-file-names=nocontrol",
            "--no-verbose",
            "--no-proxy",
            "--tries=1",
            "-e",
            "robots=off",
            "--directory-prefix",
            str(mirror),
            f"http://127.0.0.1:{server.port}/",
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    log = proc.stderr.decode("utf-8", "surrogateescape")
    assert proc.returncode == 0, log[-3000:]
    fetched: dict[str, Path] = {}
    for line in log.splitlines():
        found = re.search(r' URL:http://127\.0\.0\.1:\d+/(\S*) \[[^]]*\] -> "(.*)" \[\d+\]$', line)
        if found:
            fetched[unquote_to_bytes(found.group(1)).decode("utf-8", "surrogateescape")] = Path(found.group(2))
    return fetched


def test_wget_mirror_gets_every_file(servers: tuple[Server, Server, Path], tmp_path: Path) -> None:
    """``wget --mirror`` of specman (from the root listing, following links as a crawler does) fetches every file
    of the tree with its bytes — a directory with an index page as that page — and saves the same files as a
    mirror of nginx; where wget did not rename a file, the mirror equals the source byte for byte."""
    if shutil.which("wget") is None:
        pytest.skip("wget is not installed (scripts/test-all)")
    nginx, specman, tree = servers
    source = tree_files(tree)
    fetched = _wget_mirror(specman, tmp_path / "specman")
    got: dict[str, str] = {}
    for url_path, local in fetched.items():
        rel = url_path + "index.html" if url_path == "" or url_path.endswith("/") else url_path
        if rel in source or not rel.endswith("index.html"):  # else: a listing, saved as index.html by wget
            got[rel] = hashlib.sha256(local.read_bytes()).hexdigest()
    assert sorted(set(source) - set(got)) == []
    assert sorted(rel for rel in source if got[rel] != source[rel]) == []
    assert sorted(set(got) - set(source)) == []
    saved = _files(tmp_path / "specman")
    for rel in saved:
        if rel in source:
            assert (tmp_path / "specman" / rel).read_bytes() == (tree / rel).read_bytes(), rel
    assert sum(rel in source for rel in saved) >= len(source) - 2  # only the two '%' names renamed by wget
    _wget_mirror(nginx, tmp_path / "nginx")
    of_nginx = set(_files(tmp_path / "nginx"))
    # the same mirror as of the old SCAR, and the dot file nginx's listings hide
    assert set(saved) - of_nginx == {"odd/.hidden"}, [p[-40:] for p in set(saved) ^ of_nginx]
    assert of_nginx <= set(saved), [p[-40:] for p in of_nginx - set(saved)]


def _files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
