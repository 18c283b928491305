"""extract_archive / extract_into / compression: formats, streams, destinations, corruption."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from specman.archive import (
    Compression,
    ExtractLimits,
    detect_compression,
    digests,
    extract_archive,
    extract_into,
    open_decompressed,
)
from specman.errors import ArchiveError, CorruptArchiveError, DigestMismatchError
from specman.server.files import ETags
from tests.fixtures.archives import Entry, compress, make_tar, snapshot, tar_of

ENTRIES = [
    Entry("./", "dir"),
    Entry("./a/", "dir"),
    Entry("./a/b.json", data=b'{"b": true}\n'),
    Entry("./a/run", data=b"#!/bin/sh\n", mode=0o750),
    Entry("./top.txt", data=b"top"),
    Entry("./a/link", "symlink", linkname="b.json"),
    Entry("./hard", "hardlink", linkname="./top.txt"),
    Entry("implicit/parents/file", data=b"made without directory members"),
]
EXPECTED = {
    "a": ("dir", 0o755),
    "a/b.json": ("file", b'{"b": true}\n', 0o644),
    "a/run": ("file", b"#!/bin/sh\n", 0o755),
    "top.txt": ("file", b"top", 0o644),
    "a/link": ("symlink", "b.json"),
    "hard": ("file", b"top", 0o644),
    "implicit": ("dir", 0o755),
    "implicit/parents": ("dir", 0o755),
    "implicit/parents/file": ("file", b"made without directory members", 0o644),
}


class _Pipe:
    """A read-only, non-seekable stream (like an HTTP body)."""

    def __init__(self, data: bytes, chunk: int = 7000) -> None:
        self._data = io.BytesIO(data)
        self._chunk = chunk

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, self._chunk) if size >= 0 else self._chunk)


@pytest.mark.parametrize("how", ["gz", "zst", "tar"])
def test_formats(tmp_path: Path, how: str) -> None:
    result = extract_archive(_Pipe(make_tar(ENTRIES, how)), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == EXPECTED
    assert (result.files, result.dirs, result.symlinks) == (5, 3, 1)
    assert result.bytes == sum(len(e.data) for e in ENTRIES)
    assert os.stat(tmp_path / "dest" / "hard").st_ino == os.stat(tmp_path / "dest" / "top.txt").st_ino
    assert os.stat(tmp_path / "dest").st_mode & 0o777 == 0o755


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_formats_and_long_names(tmp_path: Path, fmt: int) -> None:
    long_dir = "/".join(["d" * 60] * 3)
    entries = [Entry(f"{long_dir}/f.json", data=b"{}"), Entry("x" * 90 + ".json", data=b"x")]
    extract_archive(io.BytesIO(make_tar(entries, fmt=fmt)), tmp_path / "dest")
    assert (tmp_path / "dest" / long_dir / "f.json").read_bytes() == b"{}"


def test_gnu_tar_archive_of_dot(tmp_path: Path) -> None:
    """What the SCAR migration produces: ``tar -czvf manifests.tgz .`` (members ``./``, ``./a/b.json``)."""
    src = tmp_path / "scar"
    (src / "v1" / "packs").mkdir(parents=True)
    (src / "v1" / "packs" / "p.json").write_bytes(b'{"p": 1}')
    (src / "index.json").write_bytes(b"[]")
    archive = tmp_path / "manifests.tgz"
    subprocess.run(["tar", "-czf", archive, "-C", src, "."], check=True)
    result = extract_archive(archive, tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == {
        "v1": ("dir", 0o755),
        "v1/packs": ("dir", 0o755),
        "v1/packs/p.json": ("file", b'{"p": 1}', 0o644),
        "index.json": ("file", b"[]", 0o644),
    }
    assert (result.files, result.dirs) == (2, 2)


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    raw = tar_of(ENTRIES)
    data = compress(raw[:700], "gz") + compress(raw[700:], "gz")
    extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == EXPECTED


def test_zstd_frames_skippable_frames_and_checksums(tmp_path: Path) -> None:
    raw = tar_of(ENTRIES)
    skippable = (0x184D2A5A).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    with_checksum = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    data = with_checksum.compress(raw[:1000]) + skippable + zstandard.ZstdCompressor().compress(raw[1000:])
    extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == EXPECTED


def test_streamed_zstd_frame_without_content_size(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(tar_of(ENTRIES))
    extract_archive(io.BytesIO(out.getvalue()), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == EXPECTED


def test_many_small_and_one_large_file(tmp_path: Path) -> None:
    entries = [Entry(f"d{i % 7}/f{i}.json", data=str(i).encode() * 50) for i in range(3000)]
    big = os.urandom(5 << 20) + b"tail"
    entries.append(Entry("big/blob.bin", data=big))
    result = extract_archive(io.BytesIO(make_tar(entries)), tmp_path / "dest")
    assert result.files == 3001
    assert (tmp_path / "dest" / "big" / "blob.bin").read_bytes() == big
    assert (tmp_path / "dest" / "d3" / "f1746.json").read_bytes() == b"1746" * 50
    assert sum(len(files) for _, _, files in os.walk(tmp_path / "dest")) == 3001


def test_later_regular_file_wins(tmp_path: Path) -> None:
    entries = [
        Entry("a.json", data=b"first"),
        Entry("b.json", "hardlink", linkname="a.json"),
        Entry("a.json", data=b"second"),
    ]
    extract_archive(io.BytesIO(make_tar(entries)), tmp_path / "dest")
    assert (tmp_path / "dest" / "a.json").read_bytes() == b"second"
    assert (tmp_path / "dest" / "b.json").read_bytes() == b"first"  # the link's other name is not overwritten


def test_odd_but_valid_names(tmp_path: Path) -> None:
    entries = [
        Entry("ünïcødé/файл.json", data=b"utf8"),
        Entry("back\\slash", data=b"bs"),
        Entry("a//double///slash", data=b"ds"),
        Entry("C:drive", data=b"c"),
    ]
    extract_archive(io.BytesIO(make_tar(entries)), tmp_path / "dest")
    assert (tmp_path / "dest" / "ünïcødé" / "файл.json").read_bytes() == b"utf8"
    assert (tmp_path / "dest" / "back\\slash").read_bytes() == b"bs"
    assert (tmp_path / "dest" / "a" / "double" / "slash").read_bytes() == b"ds"
    assert (tmp_path / "dest" / "C:drive").read_bytes() == b"c"


def test_latin1_bytes_in_names(tmp_path: Path) -> None:
    data = make_tar([Entry("caf\udce9.txt", data=b"latin")], fmt=tarfile.USTAR_FORMAT)
    assert b"caf\xe9.txt" in tar_of([Entry("caf\udce9.txt", data=b"latin")], fmt=tarfile.USTAR_FORMAT)
    extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert os.listdir(os.fsencode(tmp_path / "dest")) == [b"caf\xe9.txt"]


def test_source_as_path_or_str(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tgz"
    layer.write_bytes(make_tar(ENTRIES))
    extract_archive(layer, tmp_path / "one")
    extract_archive(str(layer), tmp_path / "two")
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two") == EXPECTED
    with pytest.raises(ArchiveError, match=r"cannot open archive .*missing\.tgz: No such file"):
        extract_archive(tmp_path / "missing.tgz", tmp_path / "three")
    assert not (tmp_path / "three").exists()


# -- destinations -----------------------------------------------------------------------------------------


def _leftovers(parent: Path) -> list[str]:
    return sorted(name for name in os.listdir(parent) if ".staging-" in name or ".old-" in name)


def test_empty_destination_directory_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    extract_archive(io.BytesIO(make_tar(ENTRIES)), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == EXPECTED
    assert _leftovers(tmp_path) == []


def test_non_empty_destination_is_refused_before_reading(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.json").write_bytes(b"keep")

    class Unreadable:
        def read(self, size: int = -1, /) -> bytes:
            raise AssertionError("the archive must not be read")

    with pytest.raises(ArchiveError, match="dest is not empty"):
        extract_archive(Unreadable(), dest)
    assert snapshot(dest) == {"keep.json": ("file", b"keep", 0o644)}
    assert _leftovers(tmp_path) == []


def test_replace_swaps_a_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "gone.json").write_bytes(b"old")
    extract_archive(io.BytesIO(make_tar(ENTRIES)), dest, replace=True)
    assert snapshot(dest) == EXPECTED
    assert _leftovers(tmp_path) == []


def test_replace_keeps_the_old_tree_when_the_archive_is_bad(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.json").write_bytes(b"keep")
    with pytest.raises(CorruptArchiveError):
        extract_archive(io.BytesIO(make_tar(ENTRIES)[:-30]), dest, replace=True)
    assert snapshot(dest) == {"keep.json": ("file", b"keep", 0o644)}
    assert _leftovers(tmp_path) == []


def test_destination_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "dest").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="exists and is not a directory"):
        extract_archive(io.BytesIO(make_tar(ENTRIES)), tmp_path / "dest", replace=True)


def test_missing_parents_of_destination_are_created(tmp_path: Path) -> None:
    extract_archive(io.BytesIO(make_tar(ENTRIES)), tmp_path / "x" / "y" / "dest")
    assert snapshot(tmp_path / "x" / "y" / "dest") == EXPECTED


def test_before_publish_failure_leaves_nothing(tmp_path: Path) -> None:
    def verify() -> None:
        raise DigestMismatchError("sha256:aaa", "sha256:bbb", "layer")

    with pytest.raises(DigestMismatchError):
        extract_archive(io.BytesIO(make_tar(ENTRIES)), tmp_path / "dest", before_publish=verify)
    assert not (tmp_path / "dest").exists()
    assert _leftovers(tmp_path) == []


def test_extract_into_requires_an_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    extract_into(io.BytesIO(make_tar(ENTRIES)), target)
    assert snapshot(target) == EXPECTED
    with pytest.raises(ArchiveError, match="not empty"):
        extract_into(io.BytesIO(make_tar(ENTRIES)), target)
    with pytest.raises(ArchiveError, match="No such file"):
        extract_into(io.BytesIO(make_tar(ENTRIES)), tmp_path / "missing")


def test_os_errors_become_one_line(tmp_path: Path) -> None:
    data = make_tar([Entry("n" * 300, data=b"too long for ext4 and tmpfs")])
    with pytest.raises(ArchiveError, match=r"cannot create .*nnnn: File name too long$") as info:
        extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "dest").exists()
    assert _leftovers(tmp_path) == []


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ExtractLimits(max_bytes=-1)


# -- corrupt and non-archive input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", r"not a tar archive \(starts with bytes 3c68746d = '<htm'\)"),
        (b"\x00\x01\xfe\xff" + b"\x00" * 1000, r"starts with bytes 0001feff = '\.\.\.\.'"),
        (b"", "empty"),
        (b"BZh91AY&SY" + b"\x00" * 100, "bzip2"),
        (b"PK\x03\x04" + b"\x00" * 100, "zip"),
    ],
)
def test_not_an_archive(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(CorruptArchiveError, match=message):
        extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert _leftovers(tmp_path) == []


def test_random_bytes(tmp_path: Path) -> None:
    with pytest.raises(CorruptArchiveError, match="not a tar archive"):
        extract_archive(io.BytesIO(b"\x42" + os.urandom(4095)), tmp_path / "dest")


@pytest.mark.parametrize(
    ("how", "cut", "message"),
    [
        ("gz", 20, "truncated gzip stream"),
        ("gz", 3, "truncated gzip stream"),
        ("zst", 20, "truncated zstd stream"),
        ("zst", 3, "truncated zstd stream"),
        ("tar", 3000, "ends inside member .a.bin. \\(truncated\\)"),
        ("tar", 512 + 4096, "without an end-of-archive marker"),
    ],
)
def test_truncated(tmp_path: Path, how: str, cut: int, message: str) -> None:
    big = [Entry("a.bin", data=os.urandom(4096)), Entry("b.json", data=b"{}")]
    data = make_tar(big, how)
    data = data[:cut] if how == "tar" else data[:-cut]
    (tmp_path / "dest").mkdir()
    with pytest.raises(CorruptArchiveError, match=message):
        extract_archive(io.BytesIO(data), tmp_path / "dest")
    assert os.listdir(tmp_path / "dest") == []
    assert _leftovers(tmp_path) == []


def test_truncated_tar_inside_a_header(tmp_path: Path) -> None:
    data = tar_of([Entry("a.json", data=b"{}"), Entry("b.json", data=b"{}")])
    with pytest.raises(CorruptArchiveError, match="malformed tar header: truncated header"):
        extract_archive(io.BytesIO(data[: 1024 + 100]), tmp_path / "dest")


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    data = bytearray(make_tar(ENTRIES))
    data[-8] ^= 0xFF
    with pytest.raises(CorruptArchiveError, match="corrupt gzip stream"):
        extract_archive(io.BytesIO(bytes(data)), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_corrupt_tar_header_after_the_first_member(tmp_path: Path) -> None:
    data = bytearray(tar_of([Entry("a.json", data=b"{}"), Entry("b.json", data=b"{}")]))
    data[1024 + 148] ^= 0x01  # checksum of the second header
    with pytest.raises(CorruptArchiveError, match="bad checksum"):
        extract_archive(io.BytesIO(bytes(data)), tmp_path / "dest")


def test_source_errors(tmp_path: Path) -> None:
    payload = make_tar(ENTRIES)

    class Failing:
        def __init__(self, exc: Exception) -> None:
            self._exc = exc
            self._sent = False

        def read(self, size: int = -1, /) -> bytes:
            if self._sent:
                raise self._exc
            self._sent = True
            return payload[:600]

    with pytest.raises(ArchiveError, match="cannot read archive: Connection reset"):
        extract_archive(Failing(ConnectionResetError(104, "Connection reset by peer")), tmp_path / "a")
    mismatch = DigestMismatchError("sha256:aa", "sha256:bb", "layer")
    with pytest.raises(DigestMismatchError):
        extract_archive(Failing(mismatch), tmp_path / "b")
    assert _leftovers(tmp_path) == []


# -- compression module -----------------------------------------------------------------------------------


def test_detect_compression() -> None:
    assert detect_compression(b"\x1f\x8b\x08\x00") is Compression.GZIP
    assert detect_compression(b"\x28\xb5\x2f\xfd") is Compression.ZSTD
    assert detect_compression(tar_of([Entry("a", data=b"a")])[:512]) is Compression.NONE
    with pytest.raises(CorruptArchiveError):
        detect_compression(b"ustar")


@pytest.mark.parametrize("threaded", [True, False])
def test_open_decompressed(threaded: bool) -> None:
    raw = os.urandom(3 << 20)
    with open_decompressed(io.BytesIO(compress(raw, "gz") + compress(raw, "gz")), threaded=threaded) as stream:
        assert stream.compression is Compression.GZIP
        assert stream.read() == raw + raw
    truncated = open_decompressed(io.BytesIO(compress(raw, "gz")[:-9]), threaded=threaded)
    with truncated, pytest.raises(CorruptArchiveError, match="truncated gzip stream"):
        _read_all(truncated)


def _read_all(stream: io.RawIOBase) -> None:
    while stream.read(1 << 16):
        pass


# -- the fast header parser agrees with the standard library -----------------------------------------------


def _header_blocks() -> list[bytes]:
    entries = [
        Entry("plain.json", data=b"{}"),
        Entry("dir/", "dir"),
        Entry("link", "symlink", linkname="plain.json"),
        Entry("hard", "hardlink", linkname="plain.json"),
        Entry("dev", "chr"),
        Entry("é-utf8.json", data=b"x"),
        Entry("caf\udce9", data=b"x"),
        Entry("/".join(["p" * 50] * 4) + "/name.json", data=b"x"),  # ustar prefix, or long-name headers
        Entry("x" * 300, data=b"x"),
    ]
    blocks: list[bytes] = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for entry in entries:
            try:
                data = tar_of([entry], fmt=fmt)
            except ValueError:  # too long for ustar
                continue
            blocks += [data[i : i + 512] for i in range(0, len(data), 512)]
    big_uid = tarfile.TarInfo("big-uid")
    big_uid.uid = 1 << 40  # base-256 in GNU format
    blocks.append(big_uid.tobuf(tarfile.GNU_FORMAT))
    spaced = bytearray(tar_of([Entry("spaced", data=b"x")], fmt=tarfile.USTAR_FORMAT)[:512])
    spaced[100:108] = b"  644  \0"
    blocks.append(_with_checksum(spaced, signed=False))
    high = bytearray(tar_of([Entry("\udcff\udcfe", data=b"x")], fmt=tarfile.USTAR_FORMAT)[:512])
    blocks.append(_with_checksum(high, signed=True))  # old Sun/NeXT tars sum signed bytes
    v7_dir = bytearray(tar_of([Entry("olddir/", data=b"")], fmt=tarfile.USTAR_FORMAT)[:512])
    v7_dir[156:157] = tarfile.AREGTYPE
    blocks.append(_with_checksum(v7_dir, signed=False))
    bad = bytearray(blocks[0])
    bad[148:156] = b"0000000\0"
    blocks += [bytes(bad), bytes(512), b"junk" * 128]
    return blocks


def _with_checksum(block: bytearray, *, signed: bool) -> bytes:
    block[148:156] = b" " * 8
    total = sum((b - 256 if signed and b > 127 else b) for b in block)
    block[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(block)


def _parse(cls: type[tarfile.TarInfo], block: bytes) -> object:
    try:
        info = cls.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return type(exc)
    fields = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname")
    return {field: getattr(info, field) for field in (*fields, "devmajor", "devminor")}


def test_fast_header_parser_matches_tarfile() -> None:
    from specman.archive._tarstream import TarInfo

    blocks = _header_blocks()
    assert len(blocks) > 40
    for block in blocks:
        assert _parse(TarInfo, block) == _parse(tarfile.TarInfo, block), block[:100]


def test_empty_archives(tmp_path: Path) -> None:
    for how in ("gz", "zst", "tar"):
        result = extract_archive(io.BytesIO(make_tar([], how)), tmp_path / how)
        assert os.listdir(tmp_path / how) == []
        assert (result.files, result.dirs, result.symlinks, result.bytes) == (0, 0, 0, 0)


def test_global_pax_header(tmp_path: Path) -> None:
    """``git archive`` starts with a global PAX header (the commit id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "abc"}) as tar:
        info = tarfile.TarInfo("a.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    extract_archive(io.BytesIO(compress(buf.getvalue(), "gz")), tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == {"a.json": ("file", b"{}", 0o644)}


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        extract_archive(io.BytesIO(make_tar(ENTRIES)), tmp_path / "dest")
    finally:
        os.umask(old)
    assert snapshot(tmp_path / "dest") == EXPECTED


def test_replace_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from specman.archive import _publish

    monkeypatch.setattr(_publish, "_exchange", lambda first, second: False)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.json").write_bytes(b"old")
    extract_archive(io.BytesIO(make_tar(ENTRIES)), dest, replace=True)
    assert snapshot(dest) == EXPECTED
    assert _leftovers(tmp_path) == []


def test_files_carry_their_content_digest_for_the_etags(tmp_path: Path) -> None:
    """Files of ``MIN_SIZE`` or more — from the writer threads or written in chunks — get their sha256 recorded,
    a hard link shares it, smaller files are left to the server; a rewritten file no longer matches its record
    and the server's ETags hash it again."""
    medium, big = os.urandom(digests.MIN_SIZE), os.urandom(5 << 20)
    entries = [Entry("small.json", data=b'{"s": 1}\n'), Entry("medium.bin", data=medium), Entry("big.bin", data=big)]
    entries.append(Entry("again", "hardlink", linkname="medium.bin"))
    dest = tmp_path / "dest"
    extract_archive(io.BytesIO(make_tar(entries)), dest)
    if not digests._enabled:
        pytest.skip("this filesystem has no user extended attributes: the server hashes instead")
    for name in ("medium.bin", "big.bin", "again"):
        path = dest / name
        assert digests.recorded(path, path.stat()) == hashlib.sha256(path.read_bytes()).hexdigest(), name
    small = dest / "small.json"
    assert digests.recorded(small, small.stat()) is None
    etags = ETags()
    assert etags.get(small, small.stat()) == f'"{hashlib.sha256(small.read_bytes()).hexdigest()[:32]}"'
    path = dest / "medium.bin"
    assert etags.get(path, path.stat()) == f'"{hashlib.sha256(medium).hexdigest()[:32]}"'
    time.sleep(0.05)  # past the file system's timestamp granularity
    rewritten = os.urandom(digests.MIN_SIZE)
    path.write_bytes(rewritten)  # in place, the same size: only the mtime tells the record is stale
    assert digests.recorded(path, path.stat()) is None
    assert etags.get(path, path.stat()) == f'"{hashlib.sha256(rewritten).hexdigest()[:32]}"'
