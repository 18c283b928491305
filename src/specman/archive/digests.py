"""The content digest of an extracted file, recorded on the file itself for the server's ETags.

Extraction hashes every regular file as it writes it (the bytes pass through anyway; hashing releases the GIL in
the writer threads) and stores ``"<sha256 hex> <size> <mtime_ns>"`` in the extended attribute
``user.specman.sha256``.  An extended attribute belongs to the inode, so it follows the file into every hard link
of every generation.  ``recorded`` gives the digest back only while the file still has the size and
modification time it was recorded with (a rewrite changes the mtime), so a stale value is never served.

Without it, the server hashes a file the first time a worker serves it and again whenever its bounded cache has
forgotten it: for a 10,000-file tree fetched over and over, on every request.  Recording is best effort:
a filesystem without user extended attributes (or a read-only file as non-root) makes the server hash, as before;
the first ``ENOTSUP`` turns recording off for the process.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Final

__all__ = ["ATTRIBUTE", "record", "recorded"]

ATTRIBUTE: Final = "user.specman.sha256"
_VALUE: Final = re.compile(rb"([0-9a-f]{64}) ([0-9]+) ([0-9]+)")
_enabled = hasattr(os, "setxattr")


def record(fd: int, sha256_hex: str) -> None:
    """Record ``sha256_hex`` as the content digest of the file open at ``fd`` (after its last write)."""
    global _enabled
    if not _enabled:
        return
    try:
        st = os.fstat(fd)
        os.setxattr(fd, ATTRIBUTE, f"{sha256_hex} {st.st_size} {st.st_mtime_ns}".encode("ascii"))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            _enabled = False


def recorded(path: str | os.PathLike[str], st: os.stat_result) -> str | None:
    """The sha256 (hex) recorded on ``path`` when it still describes the file ``st`` says it is, else None."""
    if not _enabled:
        return None
    try:
        value = os.getxattr(path, ATTRIBUTE)
    except OSError:
        return None
    match = _VALUE.fullmatch(value)
    if match is None or int(match[2]) != st.st_size or int(match[3]) != st.st_mtime_ns:
        return None
    return match[1].decode("ascii")
