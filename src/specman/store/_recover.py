"""Recovery at ``Store.open``: what interrupted work left in the data directory is removed.

Removed: everything under ``staging/``, unfinished ``current.tmp-*`` swaps, generations without a record or newer
than ``current``, versions without a valid record.  Never touched: the generation ``current`` points to and the
versions it names (a damaged one is logged as an error instead).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from specman.store._fs import discard, mapped_os_errors
from specman.store._state import GENERATION_RECORD, Generation, read_generation, read_version
from specman.store.layout import CURRENT, current_number

__all__ = ["recover"]

log = logging.getLogger("specman.store")


def recover(data_dir: Path, staging_dir: Path) -> tuple[list[Path], Generation | None]:
    """Clean ``data_dir`` (see the module docstring); (what was removed, the current generation)."""
    generations_dir, versions_dir = data_dir / "generations", data_dir / "versions"
    removed: list[Path] = []

    def remove(path: Path, why: str) -> None:
        log.warning("removing %s: %s", path, why)
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            discard(path, staging_dir)
        removed.append(path)

    with mapped_os_errors(f"recovering {data_dir}"):
        for leftover in sorted(staging_dir.iterdir()):
            log.warning("removing %s: interrupted work", leftover)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
        for link in sorted(data_dir.glob(f"{CURRENT}.tmp-*")):
            remove(link, "unfinished swap of current")
        number = current_number(data_dir)
        current = None if number is None else read_generation(generations_dir / str(number))
        if (data_dir / CURRENT).is_symlink() and current is None:
            log.error("%s/current does not point to a complete generation; nothing is published", data_dir)
        _recover_generations(generations_dir, current, remove)
        needed = {state.version for state in current.tags.values()} if current else set()
        for path in sorted(versions_dir.iterdir()):
            if read_version(path) is not None:
                continue
            if path.name in needed:
                log.error("version %s has no valid version.json but the current generation uses it", path)
            else:
                remove(path, "version without a valid version.json")
    return removed, current


def _recover_generations(
    generations_dir: Path, current: Generation | None, remove: Callable[[Path, str], None]
) -> None:
    for path in sorted(generations_dir.iterdir()):
        if not path.name.isdigit():
            log.warning("leaving unknown entry %s alone", path)
        elif current is not None and int(path.name) == current.number:
            continue
        elif not (path / GENERATION_RECORD).is_file():
            remove(path, "generation without generation.json")
        elif current is None or int(path.name) > current.number:
            remove(path, "generation built but never published")
