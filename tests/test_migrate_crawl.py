"""The crawler of ``migrate`` against a real nginx (HTML and JSON autoindex), hostile listings, and the
helper-process split of large fetches."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.errors import ContentError, SpecmanError
from specman.migrate import parallel
from specman.migrate.crawl import HttpTree, Site
from specman.migrate.listing import _html_listing, _json_listing
from tests.fixtures.nginx import ScarNginx
from tests.fixtures.registry import free_port

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (scripts/test-all)")


@pytest.fixture(scope="module")
def scar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScarNginx, Path]]:
    root = tmp_path_factory.mktemp("www")
    for i in range(parallel.MIN_SPLIT + 150):  # enough to be split over processes
        d = root / f"d{i % 17:02d}" / f"e{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.json").write_text(f'{{"n": {i}}}\n' * (i % 7 + 1))
    (root / "odd names").mkdir()
    (root / "odd names" / "ü 100% & <x>.txt").write_text("odd\n")
    server = ScarNginx(tmp_path_factory.mktemp("nginx"), root).start()
    try:
        yield server, root
    finally:
        server.stop()


def _expected(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("prefix", ["/", "/json/"])
def test_walk_and_fetch_match_the_directory(scar: tuple[ScarNginx, Path], prefix: str) -> None:
    server, root = scar
    tree = HttpTree(Site(server.url(prefix), "the SCAR"))
    try:
        files = tree.walk()
        expected = _expected(root)
        assert sorted(files) == sorted(expected)
        assert all(size == (root / path).stat().st_size for path, size in files.items())  # sizes from the listing
        found = tree.fetch_all(["odd names/ü 100% & <x>.txt"])
        state = found["odd names/ü 100% & <x>.txt"]
        assert state is not None and state.sha256 == expected["odd names/ü 100% & <x>.txt"]
    finally:
        tree.close()


def test_split_over_processes_gives_the_same_answer(scar: tuple[ScarNginx, Path], tmp_path: Path) -> None:
    server, root = scar
    tree = HttpTree(Site(server.url("/"), "the SCAR"))
    moved: list[int] = []
    try:
        paths = list(tree.walk())
        mirror = tmp_path / "mirror"
        found = parallel.fetch_all(tree, paths, mirror=mirror, progress=moved.append, processes=2)
        assert list(found) == paths  # in order
        expected = _expected(root)
        assert {p: s.sha256 for p, s in found.items() if s is not None} == expected
        assert _expected(mirror) == expected  # every file copied, by both processes
        assert sum(moved) == sum((root / p).stat().st_size for p in paths)
        assert parallel.helper_peak_rss() > 0
        # revalidation with the validators of the copy: all unchanged (304s), from both processes
        again = parallel.fetch_all(tree, paths, known={p: s for p, s in found.items() if s}, processes=2)
        assert again == found
    finally:
        tree.close()


def test_a_failure_or_a_vanished_file_in_a_helper(scar: tuple[ScarNginx, Path]) -> None:
    server, root = scar
    tree = HttpTree(Site(server.url("/"), "the SCAR"))
    try:
        paths = list(tree.walk())
        # the helper takes the first part of the list: a name nginx refuses (400) fails the whole fetch, in one line
        with pytest.raises(SpecmanError, match=r"^the SCAR: GET /bad%00name: HTTP 400$"):
            parallel.fetch_all(tree, ["bad\0name", *paths], processes=2)
        gone = root / paths[0]
        content = gone.read_bytes()
        gone.unlink()  # vanished after the listing: None, not an error (the caller decides)
        try:
            found = parallel.fetch_all(tree, paths, processes=2)
        finally:
            gone.write_bytes(content)
        assert found[paths[0]] is None and all(found[p] is not None for p in paths[1:])
    finally:
        tree.close()


def test_hostile_listings_are_ignored_or_refused() -> None:
    html = (
        '<a href="../">../</a><a href="/etc/passwd">x</a><a href="http://evil/">e</a><a href="?C=N;O=D">sort</a>'
        '<a href="..%2f..%2fetc/">up</a><a href="a%2fb">slash</a><a href="ok.json">ok.json</a> 01-Jan-2026 10:00 42'
        '<a href="sub/">sub/</a>'
    )
    listing = _html_listing(html)
    assert listing.files == {"ok.json": 42} and listing.dirs == ["sub"]
    assert _json_listing([{"name": "a\\b", "type": "file", "size": 1}], "t").files == {"a\\b": 1}  # a POSIX name
    for bad in ("..", "a/b", "x\0y", ""):
        with pytest.raises(ContentError):
            _json_listing([{"name": bad, "type": "file", "size": 1}], "test")
    with pytest.raises(ContentError):
        _json_listing({"not": "a list"}, "test")
    assert _json_listing([{"name": "s", "type": "other"}], "test").files == {}


def test_a_directory_answered_by_its_index_page_is_refused(tmp_path: Path) -> None:
    """nginx serves a directory's index.html instead of its autoindex: the crawler would miss its files, so the
    walk fails naming the directory (the preflight's source check then says to migrate from the directory)."""
    root = tmp_path / "www"
    (root / "site").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<html><head><title>Our site</title></head><a href='x.html'>x</a>")
    (root / "site" / "x.html").write_text("x")
    server = ScarNginx(tmp_path / "nginx", root).start()
    tree = HttpTree(Site(server.url("/"), "the SCAR"))
    try:
        with pytest.raises(ContentError, match=r"the listing of /site/: a page, not a directory listing .*--from DIR"):
            tree.walk()
    finally:
        tree.close()
        server.stop()


def test_the_environments_proxy_rules_are_honoured(
    scar: tuple[ScarNginx, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY sends the crawl through the proxy (here a closed port: the error names it), NO_PROXY
    exempts the host — as specman's other clients (httpx) read them."""
    server, _root = scar
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", f"http://{dead}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    tree = HttpTree(Site(server.url("/"), "the SCAR"))
    try:
        with pytest.raises(SpecmanError, match=rf"cannot connect to .*connection refused|{dead}"):
            tree.listing("")
    finally:
        tree.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    tree = HttpTree(Site(server.url("/"), "the SCAR"))
    try:
        assert tree.listing("").dirs
    finally:
        tree.close()


def test_a_refused_connection_is_one_clear_error() -> None:
    """Nothing listening: one line naming the host and the reason."""
    port = free_port()
    tree = HttpTree(Site(f"http://127.0.0.1:{port}/", "the SCAR"))
    try:
        with pytest.raises(SpecmanError, match=rf"^cannot connect to 127.0.0.1:{port}: .*refused"):
            tree.walk()
    finally:
        tree.close()
