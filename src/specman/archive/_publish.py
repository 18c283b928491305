"""Moving a finished tree into place: destination checks, the staging directory, the final rename.

This module owns the "all or nothing" of ``extract_archive``: the destination is inspected before anything
is read, the tree is built in a hidden sibling directory (same file system, so renames are atomic), and only
a complete tree is renamed to the destination.  It knows nothing about archives.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Final

from specman.archive._writers import os_error
from specman.errors import ArchiveError

__all__ = ["check_destination", "make_staging", "publish"]

_AT_FDCWD: Final = -100
_RENAME_EXCHANGE: Final = 2


def check_destination(dest: Path, *, replace: bool) -> None:
    """Refuse a destination that is not a directory, or is a non-empty one and ``replace`` is false."""
    try:
        found = os.lstat(dest)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_error(exc, "inspect destination", str(dest)) from exc
    if not stat.S_ISDIR(found.st_mode):
        raise ArchiveError(f"destination {dest} exists and is not a directory")
    if replace:
        return
    try:
        with os.scandir(dest) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise os_error(exc, "inspect destination", str(dest)) from exc
    if not empty:
        raise ArchiveError(f"destination {dest} is not empty (replace it explicitly to overwrite it)")


def make_staging(dest: Path) -> Path:
    """Create ``dest.parent / ".{dest.name}.staging-<random>"`` (and ``dest.parent`` if missing)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    except OSError as exc:
        raise os_error(exc, "create a staging directory in", str(dest.parent)) from exc


def publish(staging: Path, dest: Path, *, replace: bool) -> None:
    """Rename the finished ``staging`` tree to ``dest``; with ``replace``, swap out a non-empty ``dest``."""
    try:
        os.rename(staging, dest)  # dest missing, or an empty directory: one atomic rename
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise os_error(exc, "move the extracted tree to", str(dest)) from exc
        if not replace:
            raise ArchiveError(f"destination {dest} is not empty") from exc
    try:
        if _exchange(staging, dest):
            old = staging  # the old tree now sits where the staging directory was
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            try:
                os.rename(dest, old / "tree")
                try:
                    os.rename(staging, dest)
                except OSError:
                    os.rename(old / "tree", dest)
                    raise
            except OSError:
                shutil.rmtree(old, ignore_errors=True)
                raise
    except OSError as exc:
        raise os_error(exc, "replace", str(dest)) from exc
    shutil.rmtree(old, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with ``renameat2(RENAME_EXCHANGE)``; False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))
