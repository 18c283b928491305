"""Packing a directory into a deterministic tar+gzip layer, streamed and hashed while written.

This module owns the bytes specman pushes for a directory (``manifests.tgz``).  The same tree and the same
``mtime`` always give the same bytes, hence the same digest:

* members are the tree's paths relative to ``src``, without ``./`` and without a root entry: ``a/`` for a
  directory (tar's own convention: a trailing slash), ``a/b.json`` for a file;
* order: depth first, each directory's entries sorted by the bytes of their names, a directory right before
  its contents (GNU ``tar --sort=name`` order);
* uid/gid 0, empty user and group names, mtime ``mtime``, mode 0755 for directories and for files with any
  execute bit, 0644 for other files;
* POSIX.1-2001 (PAX) format; extended headers appear only for names that need them (long or non-ASCII);
* gzip by ISA-L with header mtime 0 and no file name.

Regular files that are hard links of each other are stored as independent regular files.  Symlinks are kept
when their target stays inside ``src`` (the same rule the extractor applies, ``_tree.TreeModel``, so every
packed layer can be extracted); sockets, devices and FIFOs are refused.  The archive is streamed to ``out``
(never held in memory) through a writer computing its sha256 and size.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Final, cast

from isal import igzip_threaded

from specman.archive._tree import TreeModel, normalise_name
from specman.archive._writers import os_error
from specman.errors import ArchiveError, SpecmanError, UnsafeMemberError

__all__ = [
    "DEFAULT_COMPRESSLEVEL",
    "RESERVED_ROOT_NAME",
    "PackResult",
    "pack_directory",
    "pack_to_file",
    "reserved_entry",
]

#: The one name a served tree cannot hold at its root: ``specman serve`` keeps ``/_specman/`` for itself (status,
#: versions, probes).  ``push`` refuses a directory holding it; the store leaves it out of merged views.
RESERVED_ROOT_NAME: Final = "_specman"

#: ISA-L level (0-3).  On a tree of JSON manifests 1 came within 2 % of ``gzip -6``; 0 is faster, 40 % larger.
DEFAULT_COMPRESSLEVEL: Final = 1
_CHUNK: Final = 1 << 20
_KINDS: Final = {
    stat.S_IFSOCK: "socket",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


@dataclass(frozen=True)
class PackResult:
    """The archive written: ``digest`` (``sha256:<hex>``) and ``size`` of the compressed bytes; what it holds."""

    digest: str
    size: int
    files: int
    dirs: int
    symlinks: int
    bytes: int


class _HashingWriter:
    """Forwards writes to ``out`` while computing their sha256 and counting them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        try:
            self._out.write(data)
        except OSError as exc:
            raise ArchiveError(f"cannot write the archive: {exc.strerror or exc}") from exc
        return len(data)

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise ArchiveError(f"cannot write the archive: {exc.strerror or exc}") from exc


class _Tell:
    """A write-only stream with the ``tell()`` tarfile asks for once when it opens (isal's threaded gzip
    writer cannot tell); tarfile counts offsets itself after that."""

    def __init__(self, out: BinaryIO) -> None:
        self.write = out.write

    def tell(self) -> int:
        return 0


class _Packer:
    def __init__(self, root: str, archive: tarfile.TarFile, mtime: int) -> None:
        self.root = root
        self.archive = archive
        self.mtime = mtime
        self.model = TreeModel()
        self.files = self.bytes = 0

    def run(self) -> None:
        stack = self._children("")
        while stack:
            path, entry = stack.pop()
            normalise_name(path)  # refuses control characters and over-long names, as the extractor would
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise os_error(exc, "inspect", entry.path) from exc
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFDIR:
                self._add(path, tarfile.DIRTYPE, 0o755)
                self.model.dirs.add(path)
                stack.extend(self._children(path))
            elif kind == stat.S_IFREG:
                self._add_file(path, entry.path, st)
            elif kind == stat.S_IFLNK:
                self._add_symlink(path, entry.path)
            else:
                what = _KINDS.get(kind, "special file")
                raise UnsafeMemberError(
                    path, f"is a {what}; only regular files, directories and symlinks can be packed"
                )

    def _children(self, path: str) -> list[tuple[str, os.DirEntry[str]]]:
        """The entries of directory ``path``, in reverse order (the walk pops from the end)."""
        directory = f"{self.root}/{path}" if path else self.root
        try:
            with os.scandir(directory) as entries:
                found = sorted(entries, key=lambda entry: os.fsencode(entry.name), reverse=True)
        except OSError as exc:
            raise os_error(exc, "list", directory) from exc
        prefix = f"{path}/" if path else ""
        return [(prefix + entry.name, entry) for entry in found]

    def _info(self, path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def _add(self, path: str, kind: bytes, mode: int) -> None:
        self.archive.addfile(self._info(path, kind, mode))

    def _add_file(self, path: str, full: str, st: os.stat_result) -> None:
        info = self._info(path, tarfile.REGTYPE, 0o755 if st.st_mode & 0o111 else 0o644)
        info.size = st.st_size
        try:
            with open(full, "rb") as content:
                self.archive.addfile(info, content)
        except SpecmanError:
            raise
        except OSError as exc:
            raise os_error(exc, "read", full) from exc
        self.files += 1
        self.bytes += st.st_size

    def _add_symlink(self, path: str, full: str) -> None:
        try:
            target = os.readlink(full)
        except OSError as exc:
            raise os_error(exc, "read symlink", full) from exc
        self.model.check_symlink(path, path, target)
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.archive.addfile(info)
        self.model.symlinks[path] = target


def reserved_entry(src: Path) -> Path | None:
    """``src/_specman`` when the directory ``src`` holds it (of any kind, a dangling symlink included)."""
    entry = src / RESERVED_ROOT_NAME
    return entry if os.path.lexists(entry) else None


def pack_directory(
    src: Path, out: BinaryIO, *, mtime: int = 0, compresslevel: int = DEFAULT_COMPRESSLEVEL
) -> PackResult:
    """Write the tree under ``src`` to ``out`` as a deterministic tar+gzip; return its digest and size.

    ``out`` is written sequentially and flushed, never closed.  On error, what was written to ``out`` is
    incomplete: write to a temporary file (``pack_to_file`` does).
    """
    root = os.fspath(src)
    if not os.path.isdir(root):
        raise ArchiveError(f"cannot pack {root}: not a directory")
    writer = _HashingWriter(out)
    # isal's threaded writer compresses (and, through ``writer``, hashes and writes) on a second thread while
    # this one walks the tree and builds tar headers.  Its output depends only on the bytes written (fixed
    # 1 MiB blocks, gzip header without name or mtime), so the archive stays deterministic.  Plain tarfile
    # "w" mode, not the stream mode "w|": its _Stream re-slices one growing buffer on every write (4.5 of
    # 14.5 s for 65,536 small files).
    gz = igzip_threaded.open(writer, "wb", compresslevel=compresslevel, threads=1)  # type: ignore[no-untyped-call]
    try:
        with tarfile.open(fileobj=cast(IO[bytes], _Tell(gz)), mode="w", format=tarfile.PAX_FORMAT) as archive:
            archive.copybufsize = _CHUNK  # type: ignore[attr-defined]
            packer = _Packer(root, archive, mtime)
            packer.run()
    finally:
        gz.close()
    writer.flush()
    return PackResult(
        digest=writer.digest,
        size=writer.size,
        files=packer.files,
        dirs=len(packer.model.dirs) - 1,
        symlinks=len(packer.model.symlinks),
        bytes=packer.bytes,
    )


def pack_to_file(
    src: Path, dest_path: Path, *, mtime: int = 0, compresslevel: int = DEFAULT_COMPRESSLEVEL
) -> PackResult:
    """``pack_directory`` into ``dest_path``: a temporary file beside it, fsynced, then renamed over it."""
    dest = Path(dest_path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise os_error(exc, "create a temporary file in", str(dest.parent)) from exc
    try:
        with open(fd, "wb", buffering=_CHUNK) as out:
            result = pack_directory(src, out, mtime=mtime, compresslevel=compresslevel)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        os.replace(tmp, dest)
    except OSError as exc:
        os.unlink(tmp)
        raise os_error(exc, "write", str(dest)) from exc
    except BaseException:
        os.unlink(tmp)
        raise
    return result
