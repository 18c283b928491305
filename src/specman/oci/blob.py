"""Reading blobs: a file-like reader that hashes while it streams, resumes, and verifies at the end.

``BlobReader`` wraps a *source* — a function ``open(offset) -> (chunks, start)`` that returns an iterator of
bytes beginning at ``start`` (``offset`` when the server honoured ``Range``, 0 when it sent the whole blob
again).  The reader:

* counts and hashes every byte as it passes, so memory does not grow with the blob;
* after a dropped connection (``TransportError`` while iterating) re-opens the source at the current offset,
  up to ``max_resumes`` times, skipping bytes already hashed when the server ignores ``Range``;
* refuses more bytes than the descriptor's size at once (a hostile registry cannot stream forever);
* at the end checks size and sha256 and raises ``DigestMismatchError`` / ``ContentError`` — bytes handed on
  before that are provisional: callers extract into staging and publish only after ``verify()`` returns.

``download_to`` uses it to write a verified file: temp file in the destination's directory, rename on success.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from specman.errors import ContentError, DigestMismatchError, TransportError
from specman.oci.manifest import Descriptor

__all__ = ["BlobReader", "BlobSource", "Progress", "download_to"]

BlobSource = Callable[[int], tuple[Iterator[bytes], int, Callable[[], None]]]
Progress = Callable[[int], None]


class BlobReader:
    """A verifying, resuming, read-only file object over one blob."""

    def __init__(
        self,
        desc: Descriptor,
        source: BlobSource,
        *,
        progress: Progress | None = None,
        max_resumes: int = 5,
        what: str | None = None,
    ) -> None:
        self.desc = desc
        self._source = source
        self._progress = progress
        self._max_resumes = max_resumes
        self._what = what or f"blob {desc.digest}"
        self._hash = hashlib.sha256()
        self.offset = 0
        self.resumes = 0
        self._buffer = b""
        self._chunks: Iterator[bytes] | None = None
        self._closer: Callable[[], None] | None = None
        self._eof = False
        self._verified = False

    # -- file protocol -------------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = b""
            while (chunk := self._next_chunk()) is not None:
                parts.append(chunk)
            return b"".join(parts)
        if not self._buffer:
            chunk = self._next_chunk()
            if chunk is None:
                return b""
            if len(chunk) <= size:  # the common case: hand the received chunk on without copying
                return chunk
            self._buffer = chunk
        parts, have = [self._buffer], len(self._buffer)
        while have < size and (chunk := self._next_chunk()) is not None:
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        out, self._buffer = data[:size], data[size:]
        return out

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the connection."""
        self._close_source()

    def _close_source(self) -> None:
        if self._closer is not None:
            with contextlib.suppress(Exception):
                self._closer()
            self._closer = None
        self._chunks = None

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- streaming ------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._close_source()
        chunks, start, closer = self._source(self.offset)
        self._closer = closer
        skip = self.offset - start
        if skip < 0:
            raise ContentError(f"{self._what}: server resumed at byte {start}, after the requested {self.offset}")
        while skip > 0:  # the server ignored Range: drop what we already hashed
            chunk = next(chunks, None)
            if chunk is None:
                raise ContentError(f"{self._what}: stream ended while skipping to byte {self.offset}")
            if len(chunk) > skip:
                chunks = _prepend(chunk[skip:], chunks)
                skip = 0
            else:
                skip -= len(chunk)
        self._chunks = chunks

    def _next_chunk(self) -> bytes | None:
        while not self._eof:
            try:
                if self._chunks is None:
                    self._open()
                assert self._chunks is not None
                chunk = next(self._chunks, None)
            except TransportError:
                if self.resumes >= self._max_resumes or self.offset >= self.desc.size:
                    raise
                self.resumes += 1
                self._chunks = None
                continue
            if chunk is None:
                self._eof = True
                self._close_source()
                self._check()
                return None
            if not chunk:
                continue
            if self.offset + len(chunk) > self.desc.size:
                self._close_source()
                raise ContentError(f"{self._what}: more data than the {self.desc.size} bytes its descriptor declares")
            self.offset += len(chunk)
            self._hash.update(chunk)
            if self._progress is not None:
                self._progress(len(chunk))
            return chunk
        return None

    def _check(self) -> None:
        if self.offset != self.desc.size:
            raise ContentError(f"{self._what}: truncated: got {self.offset} of {self.desc.size} bytes")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.desc.digest:
            raise DigestMismatchError(self.desc.digest, actual, self._what)
        self._verified = True

    def verify(self) -> None:
        """Read whatever is left (a tar reader stops before trailing padding) and check size and digest."""
        while self._next_chunk() is not None:
            pass
        self._buffer = b""
        if not self._verified:
            self._check()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def download_to(reader: BlobReader, dest: Path, *, chunk_size: int = 1 << 20) -> Path:
    """Write a blob to ``dest`` through a temp file in the same directory; rename only once verified.

    Hashing and writing stay on this thread: measured here, handing chunks to a hashing or writing thread
    costs more in GIL hand-offs than it saves (1 GiB over loopback: 1.6 s inline, 2.8 s threaded)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh, reader:
            while data := reader.read(chunk_size):
                fh.write(data)
            reader.verify()
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
