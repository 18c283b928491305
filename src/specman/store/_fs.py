"""File-system primitives of the store: the lock, atomic JSON files, fsync, disk-full mapping, discarding trees.

This module owns the system calls whose order makes the store crash-safe; it knows nothing about versions or
generations (``store.py``) and never decides what to keep.  Every ``OSError`` leaving the store passes through
``store_error`` so that a full disk reads "disk full while ..." and anything else one clear line.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from specman.errors import StoreError

__all__ = [
    "NO_HARD_LINKS",
    "DirLock",
    "clone_or_copy",
    "discard",
    "disk_full",
    "fsync_dir",
    "hard_links_work",
    "mapped_os_errors",
    "read_json",
    "store_error",
    "sync_filesystem",
    "write_json",
]

_DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
#: what ``link`` fails with on a file system without hard links (vfat, some FUSE and network mounts)
NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
_FICLONE: Final = 0x40049409  # ioctl(dest, FICLONE, source): share the extents (btrfs, xfs with reflink, bcachefs)


def disk_full(exc: BaseException) -> OSError | None:
    """The ``ENOSPC``/``EDQUOT`` error behind ``exc`` (itself, its cause or context chain), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return current
        current = current.__cause__ or current.__context__
    return None


def store_error(exc: OSError, action: str) -> StoreError:
    """One line for an OS error met while doing ``action`` ("publishing generation 3", ...)."""
    if exc.errno in _DISK_FULL:
        return StoreError(f"disk full while {action}: {exc.strerror or exc}")
    where = f" ({exc.filename})" if exc.filename else ""
    return StoreError(f"failed while {action}: {exc.strerror or exc}{where}")


@contextlib.contextmanager
def mapped_os_errors(action: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a ``StoreError`` naming ``action``."""
    try:
        yield
    except OSError as exc:
        raise store_error(exc, action) from exc


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, creations, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page of the file system holding ``path`` (``syncfs``; ``sync`` where it is missing).

    One call instead of an ``fsync`` per extracted file: the data of a whole tree is durable before the marker
    or the symlink that makes it visible is written.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            os.sync()
            return
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)


def write_json(path: Path, data: dict[str, Any], *, durable: bool) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename (the directory is not fsynced)."""
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.write("\n")
        out.flush()
        if durable:
            os.fsync(out.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clone_or_copy(source: str, dest: str) -> None:
    """Create ``dest`` with the content and mode of ``source``: a reflink (``FICLONE``, no data copied) where
    the file system offers one, else a copy.  Used where a hard link is impossible (link count at its limit,
    or a file system without hard links)."""
    mode = stat.S_IMODE(os.lstat(source).st_mode)
    with open(source, "rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            try:
                fcntl.ioctl(fd, _FICLONE, src.fileno())
            except OSError:
                with os.fdopen(os.dup(fd), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            os.unlink(dest)
            raise
        os.close(fd)


def hard_links_work(directory: Path) -> bool:
    """Whether ``link`` works in ``directory`` (a probe file, linked and removed)."""
    probe = directory / f"link-probe-{os.getpid()}"
    twin = directory / f"link-probe-{os.getpid()}.twin"
    probe.unlink(missing_ok=True)
    twin.unlink(missing_ok=True)
    probe.write_bytes(b"")
    try:
        os.link(probe, twin)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        return False
    finally:
        probe.unlink(missing_ok=True)
        twin.unlink(missing_ok=True)
    return True


def discard(path: Path, trash: Path) -> None:
    """Remove the tree ``path``: first renamed into a fresh directory under ``trash`` (atomic, so a crash never
    leaves a half-deleted tree at its old name), then deleted; ``recover`` empties ``trash`` after a crash."""
    holder = Path(tempfile.mkdtemp(prefix="trash-", dir=trash))
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, holder / "x")
    shutil.rmtree(holder, ignore_errors=True)


class DirLock:
    """An exclusive, non-blocking ``flock`` on ``path`` holding the owner's pid; released when closed or when
    the process dies (``kill -9`` included), so a stale lock file never blocks a restart."""

    def __init__(self, path: Path, data_dir: Path) -> None:
        self.path = path
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        with mapped_os_errors(f"opening the lock file {self.path}"):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = b""
            with contextlib.suppress(OSError):
                owner = os.pread(fd, 32, 0)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise store_error(exc, f"locking {self.path}") from exc
            pid = owner.decode("ascii", "replace").strip() or "unknown"
            raise StoreError(f"data dir {self.data_dir} is in use by another specman (pid {pid})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:
            os.close(fd)
            raise store_error(exc, f"writing the lock file {self.path}") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def drop_inherited(path: Path) -> int:
        """Close the descriptors of ``path`` this process inherited from a forking parent; how many.

        The lock is on the open file description, which ``fork`` shares: a forked server worker that outlives
        its parent (``kill -9`` of the parent alone) would otherwise hold the data dir's lock and block every
        restart.  Workers call this once at start; the parent keeps its own descriptor and the lock.
        """
        try:
            wanted = os.stat(path)
            fds = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:
            return 0
        dropped = 0
        for fd in fds:
            with contextlib.suppress(OSError):
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (wanted.st_dev, wanted.st_ino):
                    os.close(fd)
                    dropped += 1
        return dropped
