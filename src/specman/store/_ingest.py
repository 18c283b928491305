"""Walking a tree into the object pool: counting a new version, converting the trees of an older data dir.

This module owns the walks over whole trees that ``store.py`` makes outside extraction: ``count_tree`` counts a
freshly filled version (files, bytes, directories, symlinks) and brings into the pool any file the fill wrote
without it (a file with one link: extraction's files are linked already, so they cost one ``lstat``);
``convert_tree`` does the same to a tree that is already published (a version or generation of the layout before
the object pool), where every step is a ``link`` or a ``rename`` of a link holding the same bytes over a file, so
readers and ``kill -9`` see every file complete at every instant, and a second run skips what the first did.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from specman.store._fs import mapped_os_errors, sync_filesystem, write_json
from specman.store._objects import ObjectPool
from specman.store._state import GENERATION_RECORD, VERSION_RECORD, Generation, Version

__all__ = ["TreeCount", "convert_legacy", "count_tree"]

log = logging.getLogger("specman.store")


@dataclass(frozen=True)
class TreeCount:
    """Regular files, their bytes, directories below the root and symlinks of one tree."""

    files: int
    bytes: int
    dirs: int
    symlinks: int


def count_tree(tree: Path, pool: ObjectPool | None, *, only_single: bool = True) -> TreeCount:
    """Count ``tree``; with ``pool``, bring its regular files into the pool.

    ``only_single``: only files with one link are looked at (a new version: what extraction stored has two);
    a legacy tree's files are all looked at (their other link is the generation's, not the pool's).
    """
    files = size = dirs = symlinks = 0
    pending = [str(tree)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    dirs += 1
                elif entry.is_symlink():
                    symlinks += 1
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files += 1
                    size += st.st_size
                    if pool is not None and (st.st_nlink == 1 or not only_single):
                        pool.ingest(entry.path, st)
    return TreeCount(files, size, dirs, symlinks)


def convert_legacy(
    pool: ObjectPool, versions: Sequence[Version], generations: Sequence[Generation], durable: bool
) -> bool:
    """Turn the versions and generations extracted before the object pool into links to it, once; whether
    there was anything to convert.

    Each file is linked into the pool or replaced (by a rename) with a link to the object of its content, so a
    reader or a ``kill -9`` never meets a missing or partial file; a record is marked ``pooled`` last, after a
    ``syncfs``, and a conversion interrupted before that is done again (quickly: linked files are skipped).
    """
    todo: list[Version | Generation] = [v for v in versions if not v.pooled]
    todo += [g for g in generations if not g.pooled]
    if not todo:
        return False
    started = time.monotonic()
    log.warning("converting %d versions and generations to the object pool (once)", len(todo))
    with mapped_os_errors(f"converting {pool.root} to the object pool"):
        for item in todo:
            count = count_tree(item.tree, pool, only_single=False)
            if durable:
                sync_filesystem(item.path)
            if isinstance(item, Version):
                marked = replace(item, dirs=count.dirs, symlinks=count.symlinks, pooled=True)
                write_json(item.path / VERSION_RECORD, marked.to_json(), durable=durable)
            else:
                write_json(item.path / GENERATION_RECORD, replace(item, pooled=True).to_json(), durable=durable)
    log.warning("converted %d versions and generations in %.1f s", len(todo), time.monotonic() - started)
    return True
