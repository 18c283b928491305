"""Path handling is immune to '..', %2e%2e, encoded slashes, NUL, backslashes, overlong UTF-8 and symlinks out."""

from __future__ import annotations

import os
from pathlib import Path

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
    ],
)
def test_accepted(raw: str, names: tuple[str, ...], directory: bool) -> None:
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
        ("/a%5c..%5cb", "encoded slash"),
        ("/a\\..\\b", "backslash"),
        ("/a%00.json", "control"),
        ("/a\x00b", "control"),
        ("/%c0%ae%c0%ae/etc", "UTF-8"),
        ("/%e0%80%ae", "UTF-8"),
        ("/a%zz", "percent"),
        ("/a%", "percent"),
        ("relative", "start with /"),
    ],
)
def test_rejected(raw: str, reason: str) -> None:
    with pytest.raises(PathRejected, match=reason) as info:
        parse_request_path(raw)
    assert info.value.status == 400


def test_overlong_path() -> None:
    with pytest.raises(PathRejected) as info:
        parse_request_path("/" + "a" * 5000)
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
