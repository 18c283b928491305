"""``Store``: the data directory's versions and generations, the atomic ``current`` swap, recovery and GC.

This module owns every change to the data directory's layout (see the package docstring) and the order of
those changes; it is the only writer.  It does not fetch, verify or extract anything (``fill`` callbacks do)
and does not serve: readers in other processes use ``StoreReader`` (``reader.py``) and only read.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn

from specman.errors import StoreError
from specman.store._fs import (
    DirLock,
    discard,
    disk_full,
    fsync_dir,
    hard_links_work,
    mapped_os_errors,
    store_error,
    sync_filesystem,
    write_json,
)
from specman.store._ingest import convert_legacy, count_tree
from specman.store._merge import build_merged_tree
from specman.store._objects import OBJECTS_DIR, ObjectPool
from specman.store._order import ordered_tags
from specman.store._recover import recover
from specman.store._state import (
    GENERATION_RECORD,
    VERSION_RECORD,
    Generation,
    TagState,
    Version,
    read_generation,
    read_generations,
    read_version,
    read_versions,
    version_id,
)
from specman.store._usage import USAGE_RECORD, StorageUsage, compute_usage, write_usage
from specman.store.layout import CURRENT, LOCK, current_number, load_current
from specman.store.reader import StoreReader

__all__ = ["GcResult", "Store", "load_current"]  # load_current: re-exported from layout

log = logging.getLogger("specman.store")

_LOGGED_CONFLICTS: Final = 20


@dataclass(frozen=True)
class GcResult:
    """What one ``gc`` call removed (generation numbers, version ids) and whether work was left for later."""

    generations: tuple[int, ...]
    versions: tuple[str, ...]
    more: bool
    objects: int = 0
    object_bytes: int = 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reraise(exc: BaseException, action: str) -> NoReturn:
    """Re-raise ``exc`` (being handled) as a ``StoreError`` when it is a disk-full or other OS error."""
    full = disk_full(exc)
    if full is not None:
        raise store_error(full, action) from exc
    if isinstance(exc, OSError):
        raise store_error(exc, action) from exc
    raise exc


class Store:
    """The data directory of one specman: open it (lock + recovery), add versions, publish generations, GC.

    Not thread-safe: one caller (the sync loop) makes the changes.  ``durable`` (default) flushes data and
    records so that a power loss, not only ``kill -9``, leaves the last published view intact.
    """

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.durable = durable
        self.versions_dir = self.data_dir / "versions"
        self.generations_dir = self.data_dir / "generations"
        self.staging_dir = self.data_dir / "staging"
        self.objects_dir = self.data_dir / OBJECTS_DIR
        self._lock = DirLock(self.data_dir / LOCK, self.data_dir)
        self._current: Generation | None = None
        self.reader = StoreReader(self.data_dir)  # the published view, as the server reads it
        self._pool = ObjectPool(self.objects_dir, self.staging_dir)
        self._pooling = True  # False on a file system without hard links: every version is a copy
        self._pool_dirty = True  # the pool may hold objects nothing links to (checked by the next gc)

    @property
    def objects(self) -> ObjectPool | None:
        """The object pool that extraction stores file contents in (``extract_into(objects=...)``), or None
        where the data dir's file system has no hard links (each version then holds its own copies)."""
        return self._pool if self._pooling else None

    # -- opening ----------------------------------------------------------------------------------------

    def open(self) -> Store:
        """Take the lock, create the layout, remove leftovers of interrupted work (``recover``)."""
        if self._lock.held:
            return self
        with mapped_os_errors(f"creating the data dir {self.data_dir}"):
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            with mapped_os_errors(f"creating the layout of {self.data_dir}"):
                for directory in (self.versions_dir, self.generations_dir, self.staging_dir):
                    directory.mkdir(exist_ok=True)
                self._pool.create()
                self._pooling = hard_links_work(self.staging_dir)
            if not self._pooling:
                log.warning(
                    "the file system of %s has no hard links: every version is stored as a full copy"
                    " (disk use grows with the number of versions)",
                    self.data_dir,
                )
            self.recover()
            if self._pooling and convert_legacy(
                self._pool, read_versions(self.versions_dir), read_generations(self.generations_dir), self.durable
            ):
                self._current = None
        except BaseException:
            self._lock.release()
            raise
        return self

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._lock.held:
            raise StoreError(f"store {self.data_dir} is not open")

    def recover(self) -> list[Path]:
        """Remove what interrupted work left behind and return it; the generation ``current`` points to, and
        the versions it names, are never touched (``_recover.recover``)."""
        self._require_open()
        removed, self._current = recover(self.data_dir, self.staging_dir)
        return removed

    # -- reading ----------------------------------------------------------------------------------------

    def current(self) -> Generation | None:
        """The published generation (its tree is what is served), or None before the first publish."""
        number = current_number(self.data_dir)
        if number is None:
            self._current = None
        elif self._current is None or self._current.number != number:
            self._current = read_generation(self.generations_dir / str(number))
        return self._current

    def version(self, tag: str, digest: str) -> Version | None:
        """The complete version of ``tag`` at ``digest``, or None."""
        return read_version(self.versions_dir / version_id(tag, digest))

    def has_version(self, tag: str, digest: str) -> bool:
        return (self.versions_dir / version_id(tag, digest) / VERSION_RECORD).is_file()

    def per_version_tree(self, tag: str) -> Path | None:
        """The tree of ``tag`` alone as published in the current generation (``StoreReader.per_version_tree``)."""
        return self.reader.per_version_tree(tag)

    def status(self) -> dict[str, Any]:
        """The store's part of ``/_specman/status`` (``StoreReader.status``)."""
        return self.reader.status()

    def storage_status(self) -> dict[str, Any]:
        """Unique and logical bytes, sharing ratio, inodes and the volume's free space (``StoreReader.storage``)."""
        return self.reader.storage()

    # -- writing ----------------------------------------------------------------------------------------

    def add_version(self, tag: str, digest: str, fill: Callable[[Path], object]) -> Version:
        """Create the version ``tag``@``digest`` by calling ``fill(tree)`` on an empty staging directory.

        The tree is counted, flushed, its ``version.json`` written, and the whole directory renamed into
        ``versions/`` in one step.  If the version already exists it is returned and ``fill`` is not called.
        On any exception the staging directory is removed and the exception re-raised; a full disk becomes
        ``StoreError("disk full while adding version ...")``.
        """
        self._require_open()
        vid = version_id(tag, digest)
        existing = self.version(tag, digest)
        if existing is not None:
            return existing
        action = f"adding version {tag} ({digest})"
        with mapped_os_errors(action):
            staging = Path(tempfile.mkdtemp(prefix=f"version-{vid}.", dir=self.staging_dir))
        try:
            tree = staging / "tree"
            tree.mkdir()
            self._pool_dirty = True  # from here on, objects may be linked for a version that never completes
            fill(tree)
            count = count_tree(tree, self.objects)
            version = Version(
                tag,
                digest,
                vid,
                self.versions_dir / vid,
                count.files,
                count.bytes,
                _now(),
                dirs=count.dirs,
                symlinks=count.symlinks,
                pooled=self._pooling,
            )
            if self.durable:
                sync_filesystem(staging)
            write_json(staging / VERSION_RECORD, version.to_json(), durable=self.durable)
            os.chmod(staging, 0o755)  # noqa: S103 - served content: world-readable on purpose
            os.rename(staging, version.path)
            if self.durable:
                fsync_dir(self.versions_dir)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            _reraise(exc, action)
        log.debug("stored version %s (%s): %d files, %d bytes", tag, digest, version.files, version.bytes)
        return version

    def publish(self, tags: Mapping[str, str]) -> Generation:
        """Build a generation merging the versions of ``tags`` (tag -> digest) and make it ``current``.

        Versions are layered in ``_order`` order, later wins; conflicts are recorded and logged.  If ``tags``
        equals what is published, the current generation is returned unchanged.  On failure the partial
        generation is removed and ``current`` stays as it was.
        """
        self._require_open()
        published = self.current()
        if published is not None and published.digests() == dict(tags):
            return published
        versions = {tag: self._stored(tag, tags[tag]) for tag in ordered_tags(tags)}
        number = 1 + max([int(p.name) for p in self.generations_dir.iterdir() if p.name.isdigit()] or [0])
        final = self.generations_dir / str(number)
        action = f"publishing generation {number}"
        started = time.monotonic()
        with mapped_os_errors(action):
            staging = Path(tempfile.mkdtemp(prefix=f"generation-{number}.", dir=self.staging_dir))
        try:
            tree = staging / "tree"
            tree.mkdir()
            merged = build_merged_tree([(tag, str(v.tree)) for tag, v in versions.items()], str(tree))
            generation = Generation(
                number=number,
                path=final,
                created=_now(),
                tags={tag: TagState(v.digest, v.id, v.files, v.bytes) for tag, v in versions.items()},
                files=merged.files,
                dirs=merged.dirs,
                symlinks=merged.symlinks,
                conflicts=merged.conflicts,
                pooled=self._pooling and all(v.pooled for v in versions.values()),
            )
            if self.durable:
                sync_filesystem(staging)
            write_json(staging / GENERATION_RECORD, generation.to_json(), durable=self.durable)
            os.chmod(staging, 0o755)  # noqa: S103 - served content: world-readable on purpose
            os.rename(staging, final)
            if self.durable:
                fsync_dir(self.generations_dir)
            self._swap_current(number)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if current_number(self.data_dir) != number:
                shutil.rmtree(final, ignore_errors=True)
            _reraise(exc, action)
        self._current = generation
        _log_conflicts(generation)
        log.info(
            "published generation %d: tags[%s], %d files, %d conflicts, built in %.3f s",
            number,
            " ".join(versions),
            generation.files,
            len(generation.conflicts),
            time.monotonic() - started,
        )
        return generation

    def _stored(self, tag: str, digest: str) -> Version:
        version = self.version(tag, digest)
        if version is None:
            raise StoreError(f"cannot publish tag {tag}: version {digest} is not in the store")
        return version

    def _swap_current(self, number: int) -> None:
        """Point ``current`` at ``generations/<number>`` in one ``rename`` (a new symlink replaces the old)."""
        temporary = self.data_dir / f"{CURRENT}.tmp-{secrets.token_hex(8)}"
        os.symlink(f"generations/{number}", temporary)
        try:
            os.replace(temporary, self.data_dir / CURRENT)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if self.durable:
            fsync_dir(self.data_dir)

    def gc(self, keep: int = 2, limit: int = 64) -> GcResult:
        """Remove old generations and unreferenced versions, at most ``limit`` directories per call.

        Kept: the current generation and the ``keep - 1`` newest older ones.  A version is removed when no
        kept generation names it; generations that hard-linked its files keep their own links (the inode
        lives on).  Call it after ``publish``: a version added but not yet published is unreferenced.
        """
        self._require_open()
        if keep < 1:
            raise ValueError("gc must keep at least the current generation")
        current = self.current()
        numbers = sorted((int(p.name) for p in self.generations_dir.iterdir() if p.name.isdigit()), reverse=True)
        kept: set[int] = set()
        if current is not None:
            kept = {current.number, *[n for n in numbers if n < current.number][: keep - 1]}
        doomed = [n for n in sorted(numbers) if n not in kept]
        removed_generations: list[int] = []
        removed_versions: list[str] = []
        with mapped_os_errors(f"collecting garbage in {self.data_dir}"):
            for number in doomed[:limit]:
                discard(self.generations_dir / str(number), self.staging_dir)
                removed_generations.append(number)
            referenced: set[str] = set()
            for number in kept:
                generation = read_generation(self.generations_dir / str(number))
                if generation is not None:
                    referenced.update(state.version for state in generation.tags.values())
            budget = limit - len(removed_generations)
            unreferenced = sorted(p.name for p in self.versions_dir.iterdir() if p.name not in referenced)
            for name in unreferenced[: max(budget, 0)]:
                discard(self.versions_dir / name, self.staging_dir)
                removed_versions.append(name)
        more = len(doomed) > limit or len(unreferenced) > max(budget, 0)
        if removed_generations or removed_versions:
            log.info("gc removed generations %s and versions %s", removed_generations or "[]", removed_versions or "[]")
        objects = object_bytes = 0
        if self._pool_dirty or removed_generations or removed_versions or self.usage() is None:
            objects, object_bytes = self._collect_objects()
        return GcResult(tuple(removed_generations), tuple(removed_versions), more, objects, object_bytes)

    def _collect_objects(self) -> tuple[int, int]:
        """Remove the pool's unreferenced objects and record the usage; (objects removed, their bytes)."""
        with mapped_os_errors(f"collecting unreferenced objects in {self.objects_dir}"):
            scan = self._pool.collect() if self._pooling else None
            versions, generations = read_versions(self.versions_dir), read_generations(self.generations_dir)
            write_usage(self.objects_dir / USAGE_RECORD, compute_usage(scan, versions, generations, _now()))
        self._pool_dirty = False
        if scan is not None and scan.removed:
            log.info("gc removed %d unreferenced objects (%d bytes)", scan.removed, scan.removed_bytes)
        return (scan.removed, scan.removed_bytes) if scan is not None else (0, 0)

    def usage(self) -> StorageUsage | None:
        """Bytes and inodes as of the last garbage collection (``StoreReader.usage``), or None before the first."""
        return self.reader.usage()


def _log_conflicts(generation: Generation) -> None:
    for conflict in generation.conflicts[:_LOGGED_CONFLICTS]:
        if conflict.kind == "reserved":
            log.warning(
                "path conflict %s (reserved): tag %s holds /%s, which specman keeps for itself: left out of the view",
                conflict.path,
                conflict.loser,
                conflict.path,
            )
            continue
        log.info(
            "path conflict %s (%s): %s wins over %s", conflict.path, conflict.kind, conflict.winner, conflict.loser
        )
    hidden = len(generation.conflicts) - _LOGGED_CONFLICTS
    if hidden > 0:
        log.info("%d more path conflicts, listed in %s", hidden, generation.path / GENERATION_RECORD)
