"""Small file-system primitives shared by every layer: an atomic, optionally durable file write.

``atomic_write`` writes to a temporary sibling (same directory, so the rename is atomic), sets the mode, fsyncs
when asked, and renames over the target: a reader sees the old file or the new one, never a partial one, and a
crash leaves at most a ``.<name>.*`` temp file that the owner's recovery removes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (mode ``mode``; fsynced when ``durable``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
