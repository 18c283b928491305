"""The parity proof against real ``specman serve`` processes: files, and directories answering with their index page."""

from __future__ import annotations

import hashlib
from pathlib import Path

from specman.migrate.crawl import HttpTree, Site
from specman.migrate.parity import index_directories, prove_parity
from specman.oci import LayoutRepository, push_artifact
from tests.fixtures.serve import poll, start_serve

FILES = {
    "index.html": b"<p>root page</p>\n",
    "site/index.html": b"<p>site page</p>\n",
    "site/page.html": b"<p>page</p>\n",
    "plain/a.json": b"{}\n",
    "plain/back\\slash 100%.json": b"[]\n",  # names the crawler and the proof must handle as they are
}


def _digests() -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in FILES.items()}


def test_index_directories() -> None:
    assert index_directories(["index.html", "a/index.html", "a/b.html", "b/xindex.html"]) == ["", "a/"]


def test_parity_checks_index_pages(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for rel, data in FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    push_artifact(LayoutRepository(tmp_path / "layout", create=True), tree, "0.0.0")
    source = [str(tmp_path / "layout"), "--oci-layout"]
    for name, extra, expected in (("pages", [], []), ("lists", ["--no-index-pages"], ["/", "site/"])):
        server = start_serve(source, tmp_path / name, extra_args=["--interval", "1h", *extra], tls=False)
        with server.client() as client:  # live is not ready: wait for the first generation
            assert poll(lambda: client.get("/_specman/readyz").status_code == 200), server.log_tail()
        base = f"http://127.0.0.1:{server.port}"
        served = HttpTree(Site(base + "/", "specman"))
        version = HttpTree(Site(base + "/_specman/versions/0.0.0/", "specman"))
        try:
            report = prove_parity(_digests, list(FILES), served, version)
            assert sorted(version.walk()) == sorted(FILES)  # the crawler gets JSON listings, index pages or not
        finally:
            served.close()
            version.close()
            server.stop()
        assert report.index_pages == expected, name
        assert report.ok is (not expected)
        assert not (report.missing or report.different or report.extra), report.summary()
        if expected:
            assert "2 directories not answering with their index.html (/, site/)" in report.summary()
