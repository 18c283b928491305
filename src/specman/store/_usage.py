"""What the data directory holds, in bytes and in inodes: the figures of ``/_specman/status`` and the metrics.

This module owns ``StorageUsage`` and the file ``objects/usage.json`` it is kept in.  The store computes it
after each garbage collection that had something to look at (``Store.gc``: the pass over the object pool that
removes garbage totals what stays), from that pass and from the version and generation records, so reading it
(every status request, in any process) costs one small file read, never a walk over the trees.

* ``unique_bytes``/``objects``: the content and the number of the pool's objects (every distinct file content,
  per mode); ``disk_bytes``: the blocks they occupy.
* ``logical_bytes``/``logical_files``: what the stored versions hold, each counted in full (what as many
  separate extractions would take); ``sharing_ratio`` = logical / unique.
* ``inodes``: objects + every directory and symlink of the version and generation trees + records and layout;
  hard links cost no inode.  Computed from the records, so private copies made where a link count reached its
  limit are not in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from specman.store._fs import read_json, write_json
from specman.store._objects import PoolScan
from specman.store._state import Generation, Version

__all__ = ["USAGE_RECORD", "StorageUsage", "compute_usage", "read_usage", "volume", "write_usage"]

USAGE_RECORD: Final = "usage.json"
_LAYOUT_INODES: Final = 10  # data dir, versions, generations, staging, objects, objects/sha256, lock, current...
_RECORD_INODES: Final = 3  # a version's or generation's own directory, its tree/ and its record


@dataclass(frozen=True)
class StorageUsage:
    """Bytes and inodes of the data dir, at ``computed`` (UTC)."""

    objects: int
    unique_bytes: int
    disk_bytes: int
    logical_files: int
    logical_bytes: int
    versions: int
    generations: int
    inodes: int
    pooled: bool
    computed: str

    @property
    def sharing_ratio(self) -> float | None:
        """Logical bytes per unique byte (20 versions of the same tree: about 20); None when empty."""
        return round(self.logical_bytes / self.unique_bytes, 3) if self.unique_bytes else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sharing_ratio": self.sharing_ratio}


def compute_usage(
    scan: PoolScan | None, versions: Iterable[Version], generations: Iterable[Generation], now: str
) -> StorageUsage:
    """The usage from a pass over the pool (None: no pool, every file is its own inode) and the records."""
    versions = list(versions)
    generations = list(generations)
    logical_files = sum(v.files for v in versions)
    logical_bytes = sum(v.bytes for v in versions)
    tree_inodes = sum(v.dirs + v.symlinks + _RECORD_INODES for v in versions)
    tree_inodes += sum(g.dirs + g.symlinks + _RECORD_INODES for g in generations)
    if scan is None:
        objects, unique, disk = logical_files, logical_bytes, logical_bytes
    else:
        objects, unique, disk = scan.objects, scan.bytes, scan.disk_bytes
    return StorageUsage(
        objects=objects,
        unique_bytes=unique,
        disk_bytes=disk,
        logical_files=logical_files,
        logical_bytes=logical_bytes,
        versions=len(versions),
        generations=len(generations),
        inodes=objects + tree_inodes + _LAYOUT_INODES,
        pooled=scan is not None,
        computed=now,
    )


def write_usage(path: Path, usage: StorageUsage) -> None:
    write_json(path, usage.to_json(), durable=False)  # a figure, recomputed after the next change


def read_usage(path: Path) -> StorageUsage | None:
    data = read_json(path)
    if data is None:
        return None
    data.pop("sharing_ratio", None)
    try:
        return StorageUsage(**data)
    except TypeError:
        return None


def volume(path: Path) -> dict[str, int] | None:
    """Size and free space of the file system holding ``path``, in bytes and in inodes (``statvfs``)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {
        "bytes_total": st.f_blocks * st.f_frsize,
        "bytes_free": st.f_bavail * st.f_frsize,
        "inodes_total": st.f_files,
        "inodes_free": st.f_favail,
    }
