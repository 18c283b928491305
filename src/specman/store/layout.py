"""The names of the data directory's layout that the writer (``store.Store``) and the readers share."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from specman.store._state import Generation, read_generation

__all__ = ["CURRENT", "LOCK", "current_number", "load_current"]

CURRENT: Final = "current"
LOCK: Final = "lock"  # flock()ed by the one writer; holds its pid
_CURRENT_TARGET: Final = re.compile(r"generations/([0-9]+)")


def current_number(data_dir: Path) -> int | None:
    """The generation number ``current`` points to, or None (no link, or not a link this store wrote)."""
    try:
        target = os.readlink(Path(data_dir) / CURRENT)
    except OSError:
        return None
    match = _CURRENT_TARGET.fullmatch(target)
    return int(match.group(1)) if match else None


def load_current(data_dir: Path) -> Generation | None:
    """The published generation of ``data_dir``, read without the lock (for serving processes), or None."""
    number = current_number(data_dir)
    return None if number is None else read_generation(Path(data_dir) / "generations" / str(number))
