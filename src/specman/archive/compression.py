"""Compression of layer archives: detect it from the first bytes, open a decompressing reader.

This module owns the byte level below the tar format: sniffing (gzip ``1f8b``, zstd ``28b52ffd``, plain tar
with ``ustar`` at offset 257) and a forward-only reader that yields the decompressed tar stream.  It never
seeks its source (a network body works as well as a file) and never holds more than a few MiB of it.

Every failure of the compressed stream (truncation, bad CRC, garbage) becomes a ``CorruptArchiveError``; an
``OSError`` from the source becomes an ``ArchiveError``; a ``SpecmanError`` raised by the source itself (for
example a digest check wrapped around a download) passes through unchanged.  It does not know about tar
members, names or the file system: that is ``extract.py``.
"""

from __future__ import annotations

import enum
import gzip
import io
import zlib
from collections.abc import Callable
from typing import IO, BinaryIO, Final, Protocol, cast

import zstandard
from isal import igzip, igzip_threaded, isal_zlib

from specman.errors import ArchiveError, CorruptArchiveError, NotAnArchiveError, SpecmanError

__all__ = [
    "SNIFF_SIZE",
    "Compression",
    "DecompressedStream",
    "Readable",
    "detect_compression",
    "open_decompressed",
]

#: How many leading bytes ``detect_compression`` wants (a tar header block: ``ustar`` sits at 257..262).
SNIFF_SIZE: Final = 512

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_USTAR_OFFSET: Final = 257
_USTAR_MAGIC: Final = b"ustar"
# Formats we can name in the error message instead of showing bytes only.
_KNOWN_UNSUPPORTED: Final = (
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x5d\x00\x00", "lzma-compressed"),
    (b"PK\x03\x04", "a zip file"),
    (b"\x04\x22\x4d\x18", "lz4-compressed"),
)
_CHUNK: Final = 1 << 20
# zstd allocates the frame's window: cap it (levels up to 19 use at most 8 MiB; --long and --ultra need more).
_ZSTD_MAX_WINDOW: Final = 32 << 20
_ISAL_ERROR: Final = cast(type[Exception], isal_zlib.error)


class Readable(Protocol):
    """What an archive can be read from: any object with a file-like ``read`` (files, HTTP bodies, blobs)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Compression(enum.Enum):
    """The compression of a layer, as detected from its first bytes."""

    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


def detect_compression(head: bytes) -> Compression:
    """Return the compression of a stream starting with ``head`` (give at least ``SNIFF_SIZE`` bytes, or all).

    Raises ``CorruptArchiveError`` naming what was seen when the bytes are neither gzip, zstd nor a tar header
    (POSIX ``ustar`` or GNU; pre-POSIX v7 archives, without the magic, are not recognised).
    """
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    if head[_USTAR_OFFSET : _USTAR_OFFSET + len(_USTAR_MAGIC)] == _USTAR_MAGIC:
        return Compression.NONE
    if len(head) >= SNIFF_SIZE and not any(head[:SNIFF_SIZE]):
        return Compression.NONE  # an empty tar: nothing but end-of-archive blocks
    if not head:
        raise NotAnArchiveError("layer is empty (0 bytes), not a tar archive")
    for magic, what in _KNOWN_UNSUPPORTED:
        if head.startswith(magic):
            raise CorruptArchiveError(f"layer is {what}; only tar, tar+gzip and tar+zstd are supported")
    shown = head[:4]
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in shown)
    raise NotAnArchiveError(f"layer is not a tar archive (starts with bytes {shown.hex()} = {text!r})")


class _Replay(io.RawIOBase):
    """Reads ``head`` again, then the rest of ``source``: sniffing without seeking."""

    def __init__(self, head: bytes, source: Readable) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                out = bytes(self._head)
                self._head = memoryview(b"")
                if size < 0:
                    return out + self._source.read()
                return out
            out = bytes(self._head[:size])
            self._head = self._head[size:]
            return out
        return self._source.read(size)

    def readinto(self, buffer: memoryview, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdFrameTracker:
    """Follows the frame structure of a zstd stream, to tell a complete stream from a truncated one.

    ``zstandard``'s stream reader reports a stream cut inside a frame as a clean end of data; this parser
    sees the same compressed bytes and knows whether the input stopped on a frame boundary.  It only reads
    headers (frame header, 3-byte block headers, skippable frame sizes) and skips block contents.
    """

    _MAGIC, _SKIP_SIZE, _DESCRIPTOR, _HEADER_REST, _BLOCK, _CHECKSUM = range(6)

    def __init__(self) -> None:
        self._state = self._MAGIC
        self._need = 4
        self._buf = bytearray()
        self._skip = 0
        self._checksum = False

    @property
    def at_boundary(self) -> bool:
        return self._state == self._MAGIC and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            step = min(self._need - len(self._buf), end - pos)
            self._buf += data[pos : pos + step]
            pos += step
            if len(self._buf) == self._need:
                header = bytes(self._buf)
                self._buf.clear()
                self._advance(header)

    def _expect(self, state: int, need: int) -> None:
        self._state, self._need = state, need

    def _advance(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == self._MAGIC:
            if header == _ZSTD_MAGIC:
                self._expect(self._DESCRIPTOR, 1)
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._expect(self._SKIP_SIZE, 4)
            else:
                raise CorruptArchiveError(f"corrupt zstd stream: unknown frame magic {header.hex()}")
        elif self._state == self._SKIP_SIZE:
            self._skip = value
            self._expect(self._MAGIC, 4)
        elif self._state == self._DESCRIPTOR:
            fcs_flag, single_segment = value >> 6, (value >> 5) & 1
            self._checksum = bool(value & 0x04)
            fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[value & 0x03] + fcs_size
            if rest:
                self._expect(self._HEADER_REST, rest)
            else:
                self._expect(self._BLOCK, 3)
        elif self._state == self._HEADER_REST:
            self._expect(self._BLOCK, 3)
        elif self._state == self._BLOCK:
            last, block_type, block_size = value & 1, (value >> 1) & 3, value >> 3
            if block_type == 3:
                raise CorruptArchiveError("corrupt zstd stream: reserved block type")
            self._skip = 1 if block_type == 1 else block_size
            if not last:
                self._expect(self._BLOCK, 3)
            elif self._checksum:
                self._expect(self._CHECKSUM, 4)
            else:
                self._expect(self._MAGIC, 4)
        else:  # checksum of the frame read
            self._expect(self._MAGIC, 4)


class _TrackedSource(io.RawIOBase):
    """Passes the compressed bytes to zstd while the frame tracker watches them."""

    def __init__(self, source: io.RawIOBase, tracker: _ZstdFrameTracker) -> None:
        super().__init__()
        self._source = source
        self._tracker = tracker

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size) or b""
        self._tracker.feed(data)
        return data

    def readinto(self, buffer: memoryview, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdReader(io.RawIOBase):
    """zstd decompression that raises on a stream cut inside a frame, with a bounded window (memory)."""

    def __init__(self, source: io.RawIOBase) -> None:
        super().__init__()
        self._tracker = _ZstdFrameTracker()
        decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._reader = decompressor.stream_reader(
            cast(IO[bytes], _TrackedSource(source, self._tracker)), read_size=_CHUNK // 8, read_across_frames=True
        )

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._reader.read(size)
        if not data and size != 0 and not self._tracker.at_boundary:
            raise CorruptArchiveError("truncated zstd stream")
        return data

    def readinto(self, buffer: memoryview, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._reader.close()  # type: ignore[no-untyped-call]
        super().close()


class DecompressedStream(io.RawIOBase):
    """A forward-only binary reader of the decompressed tar stream, errors mapped to ``specman.errors``.

    Closing it stops the decompression thread (if any); it never closes the source it was opened on.
    """

    def __init__(self, inner: BinaryIO | io.RawIOBase, compression: Compression) -> None:
        super().__init__()
        self._inner = inner
        self.compression: Final = compression
        self._read: Callable[[int], bytes | None] = inner.read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._read(size) or b""
        except SpecmanError:
            raise
        except EOFError as exc:
            raise CorruptArchiveError(f"truncated {self.compression.value} stream") from exc
        except (gzip.BadGzipFile, _ISAL_ERROR, zlib.error) as exc:
            raise CorruptArchiveError(f"corrupt gzip stream: {exc}") from exc
        except zstandard.ZstdError as exc:
            raise CorruptArchiveError(f"corrupt zstd stream: {exc}") from exc
        except OSError as exc:
            raise ArchiveError(f"cannot read archive: {exc.strerror or exc}") from exc

    def readinto(self, buffer: memoryview, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _read_head(source: Readable) -> bytes:
    """Read up to ``SNIFF_SIZE`` bytes, looping over short reads (pipes, sockets)."""
    parts: list[bytes] = []
    got = 0
    while got < SNIFF_SIZE:
        try:
            data = source.read(SNIFF_SIZE - got)
        except OSError as exc:
            raise ArchiveError(f"cannot read archive: {exc.strerror or exc}") from exc
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def open_decompressed(source: Readable, *, threaded: bool = True) -> DecompressedStream:
    """Sniff ``source`` and return a reader of its decompressed bytes.

    gzip is inflated by ISA-L on a second thread (``isal.igzip_threaded``, so decompression overlaps with
    the consumer) unless ``threaded`` is false or no thread can be started, then in the calling thread
    (``isal.igzip``).  Concatenated gzip members and zstd frames are read as one stream.  The source is read
    forward only, never seeked, and never closed here.
    """
    head = _read_head(source)
    compression = detect_compression(head)
    replay = _Replay(head, source)
    inner: BinaryIO | io.RawIOBase
    if compression is Compression.GZIP:
        inner = _open_gzip(replay, threaded=threaded)
    elif compression is Compression.ZSTD:
        inner = _ZstdReader(replay)
    else:
        inner = replay
    return DecompressedStream(inner, compression)


def _open_gzip(raw: io.RawIOBase, *, threaded: bool) -> BinaryIO:
    if threaded:
        try:
            reader: BinaryIO = igzip_threaded.open(raw, "rb", threads=1)  # type: ignore[no-untyped-call]
        except RuntimeError:  # "can't start new thread": fall back to inflating in this thread
            pass
        else:
            return reader
    return cast(BinaryIO, igzip.IGzipFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
