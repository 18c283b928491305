"""pack_directory / pack_to_file: deterministic tar+gzip, readable by GNU tar and by our extractor."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from specman.archive import extract_archive, pack_directory, pack_to_file
from specman.errors import ArchiveError, UnsafeMemberError
from tests.fixtures.archives import snapshot


def _tree(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.json").write_bytes(b'{"c": 1}\n')
    (root / "a.txt").write_bytes(b"top\n")
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o4775)  # noqa: S103 - setuid and group-writable: normalised to 0755
    (root / "private").write_bytes(b"secret-ish\n")
    os.chmod(root / "private", 0o600)
    (root / "empty-dir").mkdir()
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("b/c.json", root / "a" / "link")
    os.symlink("../a.txt", root / "a" / "up")
    os.link(root / "a.txt", root / "hard")
    (root / "ünïcødé.json").write_bytes(b"{}")
    return root


def _pack(src: Path, **kwargs: int) -> bytes:
    out = io.BytesIO()
    pack_directory(src, out, **kwargs)
    return out.getvalue()


def test_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    archive = tmp_path / "out.tgz"
    packed = pack_to_file(src, archive)
    result = extract_archive(archive, tmp_path / "dest")

    got = snapshot(tmp_path / "dest")
    assert got["a/b/c.json"] == ("file", b'{"c": 1}\n', 0o644)
    assert got["run.sh"] == ("file", b"#!/bin/sh\necho hi\n", 0o755)
    assert got["private"] == ("file", b"secret-ish\n", 0o644)
    assert got["a/link"] == ("symlink", "b/c.json")
    assert got["a/up"] == ("symlink", "../a.txt")
    assert got["hard"] == ("file", b"top\n", 0o644)
    assert got["empty-dir"] == ("dir", 0o755)
    assert got["big.bin"][1] == (src / "big.bin").read_bytes()
    assert set(got) == set(snapshot(src))
    assert (packed.files, packed.dirs, packed.symlinks, packed.bytes) == (
        result.files,
        result.dirs,
        result.symlinks,
        result.bytes,
    )
    assert packed.files == 7
    assert packed.symlinks == 2


def test_result_digest_and_size_match_the_bytes(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    (tmp_path / "out").mkdir()
    archive = tmp_path / "out" / "out.tgz"
    result = pack_to_file(src, archive)
    data = archive.read_bytes()
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert oct(archive.stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(tmp_path / "out") == ["out.tgz"]  # no temporary file left beside it


def test_deterministic(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one")
    # The same tree created in another order, at other times, with other on-disk metadata.
    second = tmp_path / "two"
    second.mkdir()
    (second / "ünïcødé.json").write_bytes(b"{}")
    (second / "big.bin").write_bytes((first / "big.bin").read_bytes())
    (second / "empty-dir").mkdir()
    (second / "private").write_bytes(b"secret-ish\n")
    os.chmod(second / "private", 0o640)
    (second / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(second / "run.sh", 0o700)
    (second / "a.txt").write_bytes(b"top\n")
    (second / "hard").write_bytes(b"top\n")  # a copy this time, not a hard link
    (second / "a" / "b").mkdir(parents=True)
    os.symlink("../a.txt", second / "a" / "up")
    os.symlink("b/c.json", second / "a" / "link")
    (second / "a" / "b" / "c.json").write_bytes(b'{"c": 1}\n')
    os.utime(second / "a.txt", (1, 1))

    assert _pack(first) == _pack(first)
    assert _pack(first) == _pack(second)
    assert _pack(first, mtime=1_700_000_000) == _pack(second, mtime=1_700_000_000)
    assert _pack(first, mtime=1_700_000_000) != _pack(first)


def test_member_metadata_is_normalised(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    data = _pack(src, mtime=1_234_567_890)
    assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no FNAME/FEXTRA/FCOMMENT flags
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    names = [m.name for m in members]
    assert names == [
        "a",
        "a/b",
        "a/b/c.json",
        "a/link",
        "a/up",
        "a.txt",
        "big.bin",
        "empty-dir",
        "hard",
        "private",
        "run.sh",
        "ünïcødé.json",
    ]
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 1_234_567_890
        assert not member.islnk()  # hard links are stored as regular files
        if member.isdir():
            assert member.mode == 0o755
    modes = {m.name: m.mode for m in members if m.isfile()}
    assert modes["run.sh"] == 0o755
    assert modes["private"] == 0o644


def test_gnu_tar_lists_and_extracts(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    archive = tmp_path / "out.tgz"
    pack_to_file(src, archive)
    listing = subprocess.run(["tar", "-tzf", archive], check=True, capture_output=True, text=True).stdout
    lines = listing.splitlines()
    assert lines[:3] == ["a/", "a/b/", "a/b/c.json"]
    assert "empty-dir/" in lines
    assert "ünïcødé.json" in lines
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-xzf", archive, "-C", out], check=True)
    ours = snapshot(src)
    theirs = snapshot(out)
    assert set(theirs) == set(ours)
    for path, entry in theirs.items():
        assert entry[:2] == ours[path][:2], path


def test_symlink_escaping_the_tree_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    os.symlink("../../outside", src / "sub" / "escape")
    with pytest.raises(UnsafeMemberError, match=r"sub/escape.*leaves the tree"):
        _pack(src)


def test_absolute_symlink_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/etc/passwd", src / "passwd")
    with pytest.raises(UnsafeMemberError, match=r"'passwd'.*absolute"):
        _pack(src)


def test_fifo_and_socket_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(UnsafeMemberError, match=r"'pipe'.*FIFO"):
        _pack(src)
    os.unlink(src / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(src / "sock"))
        with pytest.raises(UnsafeMemberError, match=r"'sock'.*socket"):
            _pack(src)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not a directory"):
        _pack(tmp_path / "missing")


def test_pack_to_file_leaves_nothing_on_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.json").write_bytes(b"{}")
    os.mkfifo(src / "zz-pipe")
    out = tmp_path / "out"
    out.mkdir()
    (out / "layer.tgz").write_bytes(b"previous")
    with pytest.raises(UnsafeMemberError):
        pack_to_file(src, out / "layer.tgz")
    assert os.listdir(out) == ["layer.tgz"]
    assert (out / "layer.tgz").read_bytes() == b"previous"


def test_output_is_written_sequentially(tmp_path: Path) -> None:
    """``out`` only needs ``write`` (a pipe, an upload body): no seek, no tell, no close."""
    src = _tree(tmp_path / "src")

    class WriteOnly:
        def __init__(self) -> None:
            self.parts: list[bytes] = []
            self.flushed = False

        def write(self, data: bytes) -> int:
            self.parts.append(bytes(data))
            return len(data)

        def flush(self) -> None:
            self.flushed = True

    out = WriteOnly()
    result = pack_directory(src, cast(BinaryIO, out))
    data = b"".join(out.parts)
    assert out.flushed
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data == _pack(src)
    assert max(len(part) for part in out.parts) <= 2 << 20  # streamed in pieces, not built in memory
