"""The object pool: each regular file's content stored once per (sha256, mode), shared by hard links.

Layout: ``<data-dir>/objects/sha256/<hex>-<mode>`` (``mode`` in octal, ``644`` or ``755``), one flat directory.
No fan-out (git's ``ab/`` subdirectories): each fan-out directory is one more inode and one more block, which on a
small volume counts as much as the content (a 1,000-file tree would spend 256 inodes on fan-out); ext4 (htree) and
xfs (B+tree) directories look a name up in O(log n) whatever their size.  Every version tree, and every merged
view built from them, holds hard links to these inodes, so a file identical across versions is one inode and its
bytes are on disk once.  The object's name is the sha256 of its bytes, the same digest extraction records in the
``user.specman`` attribute (``archive.digests``) and the server sends as the ``ETag``.

Writing (``adopt``/``reuse``, called by extraction's writer threads through ``archive.ObjectSink``):

* A small file (extraction buffers up to 1 MiB in memory) is hashed before anything is written: when the pool
  holds a sound object of that digest and mode, the tree gets a hard link to it and no data is written (only the
  object's mtime moves to now, see ``_refresh``: ``Last-Modified`` never goes back for a path).
* Otherwise the file is written into the version tree (a large file streamed while hashed), then linked into the
  pool under its name (``link``: one syscall); when an object of that name already exists and is sound, the
  written file is unlinked and replaced by a link to the object (with delayed allocation, the data of a file
  unlinked before writeback never reaches the disk).

A file is complete before it is linked into the pool, so after ``kill -9`` every object holds the bytes its name
says.  Objects are named by what they hold, not by what the layer claims, so an object written while extracting
a layer that later fails its digest check is sound: it is only garbage (``collect``), never published.

Sound means: the size is the one expected, and the content matches - for objects of ``digests.MIN_SIZE`` or more
the recorded digest (whose record also holds the size and the mtime, so a rewrite is seen), hashed again when
the record is missing; smaller objects are compared byte for byte with the new content (cheaper than a
record).  An unsound object (modified or truncated behind specman's back, or torn by a power loss) is logged and
replaced by the new file - an atomic ``rename`` of a link over its name - never linked into a new version.

Garbage: an object whose link count is 1 is held by the pool alone; ``collect`` removes those.  It runs in the
one writing process between syncs (never while a version is being extracted), so no link can appear between
the ``stat`` and the ``unlink``; a crash in the middle leaves only objects still to collect.

A link count can reach the file system's limit (65,000 on ext4): the next tree gets a private copy (a reflink
where the file system can) instead of a link, and the pool keeps working.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from specman.archive import digests
from specman.store._fs import clone_or_copy

__all__ = ["OBJECTS_DIR", "ObjectPool", "PoolScan", "object_name"]

log = logging.getLogger("specman.store")

OBJECTS_DIR: Final = "objects"
_ALGORITHM: Final = "sha256"
_NAME: Final = re.compile(r"([0-9a-f]{64})-([0-7]{3,4})")
_CHUNK: Final = 1 << 20


def object_name(sha256: bytes | str, mode: int) -> str:
    """``<hex>-<octal mode>``, the name of an object in the pool."""
    hexdigest = sha256 if isinstance(sha256, str) else sha256.hex()
    return f"{hexdigest}-{stat.S_IMODE(mode):o}"


def hash_file(path: str) -> bytes:
    """The sha256 of the file at ``path`` (streamed, 1 MiB at a time)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # no buffered file object: 3x cheaper
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.digest()


@dataclass(frozen=True)
class PoolScan:
    """What a pass over the pool found: objects kept, their bytes (sizes, and blocks on disk), objects removed."""

    objects: int
    bytes: int
    disk_bytes: int
    removed: int
    removed_bytes: int


class ObjectPool:
    """The ``objects/sha256`` directory of one data dir; ``work`` is a directory of the same file system for
    temporary names (the store's ``staging``, emptied on open)."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root / _ALGORITHM
        self.work = work

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: bytes | str, mode: int) -> str:
        return f"{self.root}/{object_name(sha256, mode)}"

    # -- used by extraction (archive.ObjectSink) ---------------------------------------------------------

    def reuse(self, sha256: bytes, mode: int, dest: str, data: bytes) -> bool:
        """Create ``dest`` as a link to the object holding ``data`` when the pool has a sound one."""
        found = self._sound(self.path(sha256, mode), len(data), sha256, data)
        if found is None:
            return False
        _refresh(found, sha256, len(data))
        place(found, dest)
        return True

    def adopt(self, path: str, sha256: bytes, size: int, mode: int, *, data: bytes | None = None) -> None:
        """``path`` was just written with content ``sha256`` (``size`` bytes, ``mode``): make its inode the
        object, or, if the pool already has a sound object of that name, replace ``path`` by a link to it."""
        target = self.path(sha256, mode)
        try:
            os.link(path, target, follow_symlinks=False)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno != errno.EMLINK:
                raise
            return  # path's inode is linked too often already (a hard link of the archive): keep it as it is
        existing = os.lstat(target)
        mine = os.lstat(path)
        if (existing.st_dev, existing.st_ino) == (mine.st_dev, mine.st_ino):
            return
        if self._sound(target, size, sha256, data) is not None:
            os.unlink(path)
            _refresh(target, sha256, size)
            place(target, path)
        else:
            self._replace(path, target)

    # -- checks ----------------------------------------------------------------------------------------

    def _sound(self, target: str, size: int, sha256: bytes, data: bytes | None) -> str | None:
        """``target`` when it exists and holds the expected bytes; None when missing; an unsound object is
        logged (and left for the caller to replace)."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return None
        why = self._defect(target, st, size, sha256, data)
        if why is None:
            return target
        log.warning("object %s is damaged (%s): it is replaced, not reused", target, why)
        return None

    @staticmethod
    def _defect(target: str, st: os.stat_result, size: int, sha256: bytes, data: bytes | None) -> str | None:
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size != size:
            return f"{st.st_size} bytes instead of {size}"
        if size >= digests.MIN_SIZE:
            if digests.recorded(target, st) == sha256.hex():
                return None
            return None if hash_file(target) == sha256 else "content does not match its digest"
        if data is None:
            return None if hash_file(target) == sha256 else "content does not match its digest"
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return None if os.read(fd, size + 1) == data else "content does not match its digest"
        finally:
            os.close(fd)

    def _replace(self, path: str, target: str) -> None:
        """Make ``path``'s inode the object ``target`` (replacing a damaged one) with one atomic rename."""
        temporary = f"{self.work}/object-{secrets.token_hex(8)}"
        os.link(path, temporary, follow_symlinks=False)
        try:
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise

    # -- ingesting files written without the pool (fills, legacy trees) ---------------------------------

    def ingest(self, path: str, st: os.stat_result) -> None:
        """Bring the existing regular file ``path`` into the pool (hashing it unless its digest is recorded).

        In a tree that is served (a legacy version or generation being converted), ``path`` is replaced by a
        link to an existing object with a rename, so it always exists with the same bytes.
        """
        recorded = digests.recorded(path, st) if st.st_size >= digests.MIN_SIZE else None
        sha256 = bytes.fromhex(recorded) if recorded else hash_file(path)
        target = self.path(sha256, st.st_mode)
        try:
            os.link(path, target, follow_symlinks=False)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno == errno.EMLINK:
                return
            raise
        existing = os.lstat(target)
        if (existing.st_dev, existing.st_ino) == (st.st_dev, st.st_ino):
            return
        if self._sound(target, st.st_size, sha256, None) is None:
            self._replace(path, target)
            return
        temporary = f"{self.work}/ingest-{secrets.token_hex(8)}"
        _refresh(target, sha256, st.st_size)
        place(target, temporary)
        try:
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise

    # -- garbage ---------------------------------------------------------------------------------------

    def collect(self) -> PoolScan:
        """Remove the objects no tree links to (link count 1) and total what stays."""
        objects = size = blocks = removed = removed_bytes = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not _NAME.fullmatch(entry.name):
                    log.warning("leaving unknown entry %s in the object pool alone", entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink <= 1:
                    os.unlink(entry.path)
                    removed += 1
                    removed_bytes += st.st_size
                    continue
                objects += 1
                size += st.st_size
                blocks += st.st_blocks
        return PoolScan(objects, size, blocks * 512, removed, removed_bytes)


def _refresh(target: str, sha256: bytes, size: int) -> None:
    """Set a reused object's mtime to now, and record its digest again for that mtime.

    The server's ``Last-Modified`` is the file's mtime: a path whose content goes back to an older object (a
    change reverted) must not show an older date than the content it replaces, or a client asking
    ``If-Modified-Since`` alone would get a wrong 304.  Every version reusing an object moves it forward, as the
    extraction of a new file always did; older versions sharing the inode then show the newer date (harmless:
    at worst a client fetches again).
    """
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.utime(fd)
        if size >= digests.MIN_SIZE:
            digests.record(fd, sha256)
    finally:
        os.close(fd)


def place(source: str, dest: str) -> None:
    """Create ``dest`` as a hard link to ``source``; a reflink or copy where the link count is at its limit."""
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EMLINK:
            raise
        clone_or_copy(source, dest)
