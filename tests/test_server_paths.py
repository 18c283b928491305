"""Path handling is immune to '..', %2e%2e, encoded slashes, NUL, backslashes, overlong UTF-8 and symlinks out."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from specman.server.paths import PathRejected, RequestPath, confine, parse_request_path


@pytest.mark.parametrize(
    ("raw", "names", "directory"),
    [
        ("/", (), True),
        ("/a/b.json", ("a", "b.json"), False),
        ("/a/b/", ("a", "b"), True),
        ("//a//./b", ("a", "b"), False),
        ("/notes/%C3%BCberblick.md", ("notes", "überblick.md"), False),
        ("/upgrade%20checklist.txt", ("upgrade checklist.txt",), False),
        ("/%252e%252e/x", ("%2e%2e", "x"), False),  # double encoding: a literal, harmless name
        ("/a..b/..c", ("a..b", "..c"), False),
        ("/a%5c..%5cb", ("a\\..\\b",), False),  # a backslash is part of a name, never a separator
        ("/a\\..\\b", ("a\\..\\b",), False),
        ("/%23%3F%25%20x", ("#?% x",), False),
        (b"/notes/\xc3\xbcberblick.md", ("notes", "überblick.md"), False),  # raw UTF-8 bytes
        (b"/\xff.bin", ("\udcff.bin",), False),  # not UTF-8: the byte itself (surrogateescape)
        ("/%c0%ae%c0%ae/etc", ("\udcc0\udcae\udcc0\udcae", "etc"), False),  # no '..': bytes of a name
    ],
)
def test_accepted(raw: str | bytes, names: tuple[str, ...], directory: bool) -> None:
    assert parse_request_path(raw) == RequestPath(names, directory)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/../etc/passwd", "'..'"),
        ("/a/../../etc/passwd", "'..'"),
        ("/a/..", "'..'"),
        ("/%2e%2e/etc/passwd", "'..'"),
        ("/%2E%2E%2fetc", "encoded slash"),
        ("/a%2fb", "encoded slash"),
        ("/a%00.json", "control"),
        ("/a\x00b", "control"),
        ("/a%0ab", "control"),
        ("/a%zz", "percent"),
        ("/a%", "percent"),
        ("relative", "start with /"),
    ],
)
def test_rejected(raw: str, reason: str) -> None:
    with pytest.raises(PathRejected, match=reason) as info:
        parse_request_path(raw)
    assert info.value.status == 400


def test_long_paths() -> None:
    """Encoded paths far over 4096 characters are fine while the decoded path fits PATH_MAX (4096 bytes)."""
    name = "ü" * 100  # 200 bytes, 600 encoded characters
    raw = "/" + "/".join([quote(name)] * 19)
    assert len(raw) > 11_000
    assert parse_request_path(raw).names == (name,) * 19
    with pytest.raises(PathRejected) as info:
        parse_request_path("/" + "a" * 5000)
    assert info.value.status == 414
    with pytest.raises(PathRejected) as info:
        parse_request_path("/" + "%61" * 30_000)
    assert info.value.status == 414


def test_confine_follows_symlinks_only_inside(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink("a/f.json", root / "inside")
    os.symlink("../secret.txt", root / "outside")
    os.symlink("/etc", root / "etc")
    assert confine(root, parse_request_path("/a/f.json")) == (root / "a" / "f.json").resolve()
    assert confine(root, parse_request_path("/inside")) == (root / "a" / "f.json").resolve()
    assert confine(root, parse_request_path("/")) == root.resolve()
    assert confine(root, parse_request_path("/outside")) is None
    assert confine(root, parse_request_path("/etc/passwd")) is None
    assert confine(root, parse_request_path("/missing")) is None
