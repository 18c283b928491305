"""Safe, streaming extraction of layer archives (tar, tar+gzip, tar+zstd).

This module owns turning an archive stream into a directory tree: reading members in tarfile's stream mode
(forward only, nothing of the archive kept in memory), deciding for each member whether it may be created
(``_tree.TreeModel``: names, symlinks, no write through a symlink), enforcing the limits while streaming, and
moving a complete tree into place.  It does not fetch or verify layers (``oci``) nor publish generations
(``store``): ``extract_into`` fills a directory the caller manages; ``extract_archive`` adds a private
staging directory next to the destination and a rename at the end, so a failure leaves the destination as
it was.

What is created: regular files (mode 0644, or 0755 when the member has any execute bit; setuid, setgid,
sticky and group/world write are dropped), directories (0755), symlinks whose target stays inside the tree,
hard links to regular files extracted earlier.  Devices, FIFOs and other types are refused.  Owners and
modification times are not restored (no chown, no utime: per-file metadata syscalls cost more than the
decompression), files get the time of extraction.  Nothing is fsynced: durability is the caller's call.

Speed: decompression runs on its own thread (``compression``), small files are written by a few threads
(``_writers``) fed through a queue bounded in bytes, and checks are made on names and on a record of the
directories and symlinks created, never with ``realpath``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, cast

from specman.archive._publish import check_destination, make_staging, publish
from specman.archive._tarstream import MemberData, map_tar_errors, member_data, open_tar_stream
from specman.archive._tree import TreeModel, check_link_text, normalise_name
from specman.archive._writers import FileJob, ObjectSink, WriterPool, os_error, write_file_chunks
from specman.archive.compression import DecompressedStream, Readable, open_decompressed
from specman.errors import ArchiveError, CorruptArchiveError, LimitExceededError, UnsafeMemberError

__all__ = ["DEFAULT_LIMITS", "ExtractLimits", "ExtractResult", "ObjectSink", "extract_archive", "extract_into"]

_SMALL_FILE: Final = 1 << 20  # up to this size a file goes to the writer pool in one piece
_BATCH_BYTES: Final = 256 << 10  # a batch for the pool: this many bytes or _BATCH_FILES files
_BATCH_FILES: Final = 64
_MAX_PENDING: Final = 16 << 20  # bytes of file contents waiting for the writer threads
_WORKERS: Final = 2
_CHUNK: Final = 1 << 20
_MAX_TRAILING: Final = 64 << 20  # data after the end-of-archive marker, read to verify the stream
_REFUSED_TYPES: Final = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


@dataclass(frozen=True)
class ExtractLimits:
    """Bomb protection, checked while streaming (a header declaring too much stops before its data is read).

    ``max_bytes`` counts the contents of regular files, ``max_files`` every member (files, directories,
    links), ``max_name_length`` the characters of a member name.
    """

    max_bytes: int = 8 << 30
    max_files: int = 1_000_000
    max_name_length: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_files", "max_name_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExtractLimits.{name} must not be negative")


DEFAULT_LIMITS: Final = ExtractLimits()


@dataclass(frozen=True)
class ExtractResult:
    """What was created: regular files (hard links included), directories, symlinks, bytes of file content."""

    files: int
    dirs: int
    symlinks: int
    bytes: int


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race with other threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Extractor:
    """One pass over the members of one archive into ``root`` (an existing empty directory)."""

    def __init__(self, root: str, limits: ExtractLimits, data: MemberData, sink: ObjectSink | None) -> None:
        self.root = root
        self.limits = limits
        self.data = data
        self.model = TreeModel()
        self.chmod = bool(_umask() & 0o755)
        self.sink = sink
        self.pool = WriterPool(_WORKERS, _MAX_PENDING, chmod=self.chmod, sink=sink)
        self.batch: list[FileJob] = []
        self.batch_bytes = 0
        self.members = self.files = self.bytes = 0

    def run(self, archive: tarfile.TarFile, stream: DecompressedStream) -> ExtractResult:
        while (info := archive.next()) is not None:
            self.members += 1
            if self.members > self.limits.max_files:
                raise LimitExceededError(
                    f"archive has more than {self.limits.max_files} members (limit reached at {info.name!r})"
                )
            self._member(info)
        self._flush()
        self.pool.wait()
        self._drain(stream)
        return ExtractResult(
            files=self.files,
            dirs=len(self.model.dirs) - 1,
            symlinks=len(self.model.symlinks),
            bytes=self.bytes,
        )

    def _member(self, info: tarfile.TarInfo) -> None:
        member = info.name
        path = normalise_name(member, max_length=self.limits.max_name_length)
        if info.isreg():
            if info.sparse is not None:
                raise UnsafeMemberError(member, "sparse files are not supported")
            self._regular(info, member, path)
        elif info.isdir():
            self._directory(member, path)
        elif info.issym():
            self._symlink(info, member, path)
        elif info.islnk():
            self._hardlink(info, member, path)
        else:
            kind = _REFUSED_TYPES.get(info.type)
            raise UnsafeMemberError(
                member, f"{kind}s are not extracted" if kind else f"unsupported member type {info.type!r}"
            )

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def _prepare(self, member: str, path: str, kind: str) -> str:
        """Check a new non-directory at ``path``, create its parents, wait for a pending write of it."""
        self.model.check_parents(member, path)
        self.model.check_new_path(member, path, kind)
        missing = self.model.missing_parents(path)
        if missing:
            self._make_dirs(member, missing)
        full = self._full(path)
        if full in self.pool.pending:
            self._wait()
        return full

    def _regular(self, info: tarfile.TarInfo, member: str, path: str) -> None:
        size = info.size
        if self.bytes + size > self.limits.max_bytes:
            raise LimitExceededError(
                f"archive content exceeds the limit of {self.limits.max_bytes} bytes: member {member!r}"
                f" ({size} bytes) would bring it to {self.bytes + size}"
            )
        self.bytes += size
        full = self._prepare(member, path, "regular file")
        mode = 0o755 if info.mode & 0o111 else 0o644
        self.files += 1
        if size > _SMALL_FILE:
            write_file_chunks(member, full, mode, self._chunks(member, size), chmod=self.chmod, sink=self.sink)
            return
        data = self._read(member, size) if size else b""
        self.batch.append(FileJob(member, full, data, mode))
        self.pool.pending.add(full)
        self.batch_bytes += size
        if self.batch_bytes >= _BATCH_BYTES or len(self.batch) >= _BATCH_FILES:
            self._flush()

    def _directory(self, member: str, path: str) -> None:
        if path in self.model.dirs:
            return
        self.model.check_parents(member, path)
        if path in self.model.symlinks:
            raise UnsafeMemberError(member, "a directory would replace a symlink")
        self._make_dirs(member, [*self.model.missing_parents(path), path], own=path)

    def _symlink(self, info: tarfile.TarInfo, member: str, path: str) -> None:
        full = self._prepare(member, path, "symlink")
        target = info.linkname
        self.model.check_symlink(member, path, target)
        try:
            os.symlink(target, full)
        except FileExistsError as exc:
            raise UnsafeMemberError(member, "a symlink would replace an existing file") from exc
        except OSError as exc:
            raise os_error(exc, "create symlink", full) from exc
        self.model.symlinks[path] = target

    def _hardlink(self, info: tarfile.TarInfo, member: str, path: str) -> None:
        check_link_text(member, info.linkname, "hardlink target")
        try:
            target = normalise_name(info.linkname, max_length=self.limits.max_name_length)
        except UnsafeMemberError as exc:
            raise UnsafeMemberError(member, f"hardlink target {info.linkname!r}: {exc.reason}") from exc
        self.model.check_parents(member, target)
        if target == path:
            raise UnsafeMemberError(member, "hardlink to itself")
        if target in self.model.dirs or target in self.model.symlinks:
            raise UnsafeMemberError(member, f"hardlink target {info.linkname!r} is not a regular file")
        full = self._prepare(member, path, "hardlink")
        source = self._full(target)
        if source in self.pool.pending:
            self._wait()
        try:
            found = os.lstat(source)
        except FileNotFoundError:
            found = None
        except OSError as exc:
            raise os_error(exc, "inspect", source) from exc
        if found is None or not stat.S_ISREG(found.st_mode):
            raise UnsafeMemberError(member, f"hardlink target {info.linkname!r} is not an extracted regular file")
        try:
            try:
                _link(source, full)
            except FileExistsError:
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    raise UnsafeMemberError(member, "a hardlink would replace something not a file") from None
                os.unlink(full)
                _link(source, full)
        except OSError as exc:
            raise os_error(exc, "create hardlink", full) from exc
        self.files += 1

    def _make_dirs(self, member: str, paths: list[str], own: str | None = None) -> None:
        """Create ``paths`` (parents first); ``own`` is the member's own path when it is a directory."""
        for path in paths:
            full = self._full(path)
            if full in self.pool.pending:
                self._wait()
            try:
                os.mkdir(full, 0o755)
            except FileExistsError as exc:
                if not stat.S_ISDIR(os.lstat(full).st_mode):
                    what = "a directory would replace a file" if path == own else f"its parent {path!r} is a file"
                    raise UnsafeMemberError(member, what) from exc
            except OSError as exc:
                raise os_error(exc, "create directory", full) from exc
            if self.chmod:
                os.chmod(full, 0o755)  # noqa: S103 - served content: world-readable on purpose
            self.model.dirs.add(path)

    def _read(self, member: str, size: int) -> bytes:
        data = self.data.read(size)
        if len(data) != size:
            raise CorruptArchiveError(f"tar stream ends inside member {member!r} (truncated)")
        return data

    def _chunks(self, member: str, size: int) -> Iterator[bytes]:
        while size > 0:
            step = min(size, _CHUNK)
            yield self._read(member, step)
            size -= step

    def _flush(self) -> None:
        if self.batch:
            self.pool.submit(self.batch, self.batch_bytes)
            self.batch = []
            self.batch_bytes = 0

    def _wait(self) -> None:
        self._flush()
        self.pool.wait()

    def _drain(self, stream: DecompressedStream) -> None:
        """Read what follows the end-of-archive marker, so that a truncated or corrupt stream is noticed."""
        trailing = 0
        while chunk := stream.read(_CHUNK):
            trailing += len(chunk)
            if trailing > _MAX_TRAILING:
                raise LimitExceededError(f"more than {_MAX_TRAILING} bytes follow the end of the tar archive")


def _link(source: str, target: str) -> None:
    """A hard link; a copy when the inode has as many links as the file system allows (an object of the store's
    pool shared by many versions can reach ext4's 65,000)."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EMLINK:
            raise
        shutil.copyfile(source, target, follow_symlinks=False)
        shutil.copymode(source, target, follow_symlinks=False)


@contextlib.contextmanager
def _opened(source: Readable | str | os.PathLike[str]) -> Iterator[Readable]:
    if not isinstance(source, str | os.PathLike):
        yield source
        return
    try:
        fileobj = open(source, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except OSError as exc:
        raise os_error(exc, "open archive", os.fspath(source)) from exc
    with fileobj:
        yield fileobj


def extract_into(
    source: Readable | str | os.PathLike[str],
    directory: Path,
    limits: ExtractLimits = DEFAULT_LIMITS,
    *,
    objects: ObjectSink | None = None,
) -> ExtractResult:
    """Extract the archive ``source`` (a binary stream or a path) into the existing empty ``directory``.

    The archive may be plain tar, gzip or zstd (detected).  ``source`` is read to its end (what follows the
    tar end-of-archive block is read too: a gzip or zstd stream is checked complete).  On error the directory
    holds a partial tree: the caller removes it (``extract_archive`` does).  The directory is set to 0755.
    With ``objects`` (the store's object pool), regular files are hard links to contents stored once.
    """
    root = os.fspath(directory)
    try:
        with os.scandir(root) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise os_error(exc, "extract into", root) from exc
    if not empty:
        raise ArchiveError(f"cannot extract into {root}: directory is not empty")
    try:
        with (
            _opened(source) as fileobj,
            open_decompressed(fileobj) as stream,
            map_tar_errors(),
            open_tar_stream(cast(IO[bytes], stream)) as archive,
        ):
            extractor = _Extractor(root, limits, member_data(archive), objects)
            finished = False
            try:
                result = extractor.run(archive, stream)
                finished = True
            finally:
                extractor.pool.close(abort=not finished)
    except OSError as exc:
        raise os_error(exc, "extract into", root) from exc
    try:
        os.chmod(root, 0o755)  # noqa: S103 - served content: world-readable on purpose
    except OSError as exc:
        raise os_error(exc, "set the mode of", root) from exc
    return result


def extract_archive(
    source: Readable | str | os.PathLike[str],
    dest: Path,
    *,
    limits: ExtractLimits = DEFAULT_LIMITS,
    replace: bool = False,
    before_publish: Callable[[], None] | None = None,
) -> ExtractResult:
    """Extract ``source`` to ``dest`` completely or not at all.

    The tree is built in ``dest.parent / ".{dest.name}.staging-<random>"`` and renamed to ``dest`` only after
    the whole archive was read and checked, and after ``before_publish()`` (if given; e.g. the digest check
    of a downloaded layer) returned.  ``dest`` may be missing or an empty directory; a non-empty ``dest`` is
    refused before anything is read, unless ``replace`` is true: then it is swapped with the new tree
    (atomically with ``renameat2(RENAME_EXCHANGE)`` where available) and removed.  On any error the staging
    directory is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    check_destination(dest, replace=replace)
    with _opened(source) as fileobj:
        staging = make_staging(dest)
        try:
            result = extract_into(fileobj, staging, limits)
            if before_publish is not None:
                before_publish()
            publish(staging, dest, replace=replace)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return result
