"""Writing extracted regular files: ``os.open``/``os.write``/``os.close`` on a small pool of threads.

This module owns the file-creation syscalls of extraction and their overlap with reading the archive.
Per-file syscalls cost far more than decompression when a layer holds many small files, and they release
the GIL, so the reading thread hands batches of small files to worker threads through a queue bounded in
bytes (memory stays flat whatever the archive size).  Large files are written by the caller directly with
``write_file_chunks`` (one file, many chunks, no copy to a queue).

Files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW``: nothing pre-existing is opened, no symlink is followed.
A name that already exists as a regular file is unlinked and created again (a later member of the same name
wins, as with tar; unlinking first never writes into a hard link's other name).  There is no chown, no
utime and no fsync per file; ``fchmod`` only when the process umask would strip bits of the wanted mode.
The sha256 of each file of ``digests.MIN_SIZE`` or more is recorded on it (``specman.archive.digests``) for
the server's ETags.

With an ``ObjectSink`` (the store's object pool), every file's content is stored once per (sha256, mode): a
small file is hashed from memory first and, when the sink already holds that content, only linked (no data
written); a large file is written while hashed and then handed to the sink, which links it into the pool or
swaps it for a link to the copy it already has.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from specman.archive import digests
from specman.errors import ArchiveError, UnsafeMemberError

__all__ = ["FileJob", "ObjectSink", "WriterPool", "create_file", "os_error", "write_file_chunks"]

_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def os_error(exc: OSError, action: str, path: str) -> ArchiveError:
    """One clear line for an OS error: what was being done, to which path, and the system's reason."""
    return ArchiveError(f"cannot {action} {path}: {exc.strerror or exc}")


class ObjectSink(Protocol):
    """Where file contents are stored once (``specman.store``'s object pool); called from writer threads."""

    def reuse(self, sha256: bytes, mode: int, dest: str, data: bytes) -> bool:
        """Create the missing ``dest`` holding ``data`` from a stored copy; False when there is none."""
        ...

    def adopt(self, path: str, sha256: bytes, size: int, mode: int, *, data: bytes | None = None) -> None:
        """``path`` was just written with this content: store it, or replace it by the stored copy."""
        ...


@dataclass(frozen=True, slots=True)
class FileJob:
    """One small regular file to write: its archive member name (for messages), path, content and mode."""

    member: str
    path: str
    data: bytes
    mode: int


def create_file(member: str, path: str, mode: int) -> int:
    """Create ``path`` exclusively and return its descriptor; an existing regular file is replaced."""
    try:
        return os.open(path, _CREATE_FLAGS, mode)
    except FileExistsError:
        pass
    except OSError as exc:
        raise os_error(exc, "create", path) from exc
    try:
        existing = os.lstat(path)
        if stat.S_ISDIR(existing.st_mode):
            raise UnsafeMemberError(member, "a regular file would replace a directory")
        if not stat.S_ISREG(existing.st_mode):
            raise UnsafeMemberError(member, "a regular file would replace something that is not a file")
        os.unlink(path)
        return os.open(path, _CREATE_FLAGS, mode)
    except OSError as exc:
        raise os_error(exc, "replace", path) from exc


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _clear(member: str, path: str) -> None:
    """Remove an existing regular file at ``path`` (a later member of the same name wins), refuse anything else."""
    existing = os.lstat(path)
    if stat.S_ISDIR(existing.st_mode):
        raise UnsafeMemberError(member, "a regular file would replace a directory")
    if not stat.S_ISREG(existing.st_mode):
        raise UnsafeMemberError(member, "a regular file would replace something that is not a file")
    os.unlink(path)


def _reuse(job: FileJob, sha256: bytes, sink: ObjectSink) -> bool:
    """Link ``job.path`` to the sink's copy of its content, if the sink has one."""
    try:
        try:
            return sink.reuse(sha256, job.mode, job.path, job.data)
        except FileExistsError:
            _clear(job.member, job.path)
            return sink.reuse(sha256, job.mode, job.path, job.data)
    except OSError as exc:
        raise os_error(exc, "link", job.path) from exc


def _adopt(path: str, sha256: bytes, size: int, mode: int, sink: ObjectSink, data: bytes | None) -> None:
    try:
        sink.adopt(path, sha256, size, mode, data=data)
    except OSError as exc:
        raise os_error(exc, "store the content of", path) from exc


def _write_job(job: FileJob, chmod: bool, sink: ObjectSink | None) -> None:
    sha256 = hashlib.sha256(job.data).digest() if sink is not None or len(job.data) >= digests.MIN_SIZE else b""
    if sink is not None and _reuse(job, sha256, sink):
        return
    fd = create_file(job.member, job.path, job.mode)
    try:
        if job.data:
            _write_all(fd, job.data)
        if len(job.data) >= digests.MIN_SIZE:
            digests.record(fd, sha256)
        if chmod:
            os.fchmod(fd, job.mode)
    except OSError as exc:
        raise os_error(exc, "write", job.path) from exc
    finally:
        os.close(fd)
    if sink is not None:
        _adopt(job.path, sha256, len(job.data), job.mode, sink, job.data)


def write_file_chunks(
    member: str, path: str, mode: int, chunks: Iterable[bytes], *, chmod: bool, sink: ObjectSink | None = None
) -> None:
    """Create ``path`` and write ``chunks`` to it in the calling thread (used for large files)."""
    fd = create_file(member, path, mode)
    size = 0
    try:
        digest = hashlib.sha256()
        for chunk in chunks:
            _write_all(fd, chunk)
            digest.update(chunk)
            size += len(chunk)
        digests.record(fd, digest.digest())
        if chmod:
            os.fchmod(fd, mode)
    except OSError as exc:
        raise os_error(exc, "write", path) from exc
    finally:
        os.close(fd)
    if sink is not None:
        _adopt(path, digest.digest(), size, mode, sink, None)


class WriterPool:
    """Worker threads writing batches of ``FileJob``; at most ``max_pending`` bytes wait in the queue.

    ``pending`` holds the paths submitted and not yet written (the caller waits for them before touching
    those paths again).  The first error of any worker is re-raised by the next ``submit``, ``wait`` or
    ``close``; after it, remaining jobs are dropped.
    """

    def __init__(self, workers: int, max_pending: int, *, chmod: bool, sink: ObjectSink | None = None) -> None:
        self.pending: set[str] = set()
        self._sink = sink
        self._max_pending = max_pending
        self._chmod = chmod
        self._queue: queue.SimpleQueue[tuple[list[FileJob], int] | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending_bytes = 0
        self._batches = 0
        self._error: BaseException | None = None
        self._aborted = False
        self._threads = [
            threading.Thread(target=self._run, name=f"specman-extract-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: list[FileJob], size: int) -> None:
        """Queue ``batch`` (whose contents total ``size`` bytes), blocking while the queue is full."""
        with self._cond:
            while self._pending_bytes and self._pending_bytes + size > self._max_pending and not self._error:
                self._cond.wait()
            self._raise_error()
            self._pending_bytes += size
            self._batches += 1
        self._queue.put((batch, size))

    def wait(self) -> None:
        """Block until every submitted batch is written; raise the first worker error."""
        with self._cond:
            while self._batches and not self._error:
                self._cond.wait()
            self._raise_error()

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers after the queued batches and raise a worker error.

        With ``abort`` (the caller is already failing) queued batches are dropped and nothing is raised.
        """
        if abort:
            with self._cond:
                self._aborted = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        if not abort:
            with self._cond:
                self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch, size = item
            try:
                for job in batch:
                    if self._error is None and not self._aborted:
                        _write_job(job, self._chmod, self._sink)
                    self.pending.discard(job.path)
            except BaseException as exc:  # handed to the reading thread, which raises it
                with self._cond:
                    if self._error is None:
                        self._error = exc
            finally:
                with self._cond:
                    self._pending_bytes -= size
                    self._batches -= 1
                    self._cond.notify_all()
