"""One reconcile of a store against its source repository, as a short list of steps with one signature.

``STEPS`` runs in order on one ``SyncState``; each step reads what the steps before it left there and adds its
own part (as Flux's ``ociRepositoryReconcileFunc`` list does)::

    list_tags → filter_tags → resolve_digests → fetch_versions → publish_generation → collect_garbage

A step that cannot go on raises ``SyncError`` (made by ``_fail``: a reason and whether a retry can help);
the runner stops there, nothing is published, and the error propagates after the summary line.  Failures of
single tags do not stop the run: the tag is recorded in ``failed`` and keeps the digest it had in the
current generation (a broken push never replaces or removes a good version, and no half tree is ever
published).  ``SyncResult`` is built once, at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from specman.errors import (
    ContentError,
    SpecmanError,
    StoreError,
    SyncError,
)
from specman.oci import Repository, extract_layer_into, reject_container_image, resolve_image_manifest
from specman.oci.blob import Progress
from specman.store import Generation, Store, Version
from specman.sync.config import SyncConfig

__all__ = ["STEPS", "StartProgress", "SyncResult", "SyncState", "reconcile_once"]

log = logging.getLogger("specman.sync")

StartProgress = Callable[[str, int], Progress]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SyncResult:
    """What one reconcile did.  ``ok`` is False when any selected tag failed."""

    source: str
    started: datetime
    finished: datetime
    duration: float
    listed: tuple[str, ...]
    selected: tuple[str, ...]
    fetched: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict[str, str]
    removed: tuple[str, ...]
    generation: int | None
    digests: dict[str, str]
    bytes_downloaded: int
    failure_kinds: dict[str, str] = field(default_factory=dict)  # tag -> exception class, as metrics count them

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class SyncState:
    """Inputs of one reconcile and what its steps found so far (mutated by the steps, in order)."""

    source: Repository
    store: Store
    config: SyncConfig
    progress: StartProgress | None
    listed: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    failure_kinds: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    generation: Generation | None = None

    def fail_tag(self, tag: str, exc: SpecmanError) -> None:
        """Record and log one tag's failure (one line: tag, digest if known, cause)."""
        self.failed[tag] = str(exc)
        self.failure_kinds[tag] = exc.kind
        fields = {"tag": tag, "digest": self.digests.get(tag, ""), "reason": exc.kind, "error": str(exc)}
        log.error(f"Failed to sync {tag}", extra={"fields": fields})


Step = Callable[[SyncState], None]


def _fail(reason: str, exc: SpecmanError) -> SyncError:
    """The one way a step gives up: a ``SyncError`` with a reason, the cause and whether a retry may help (the
    cause's own ``retryable``, decided where it was raised)."""
    if isinstance(exc, SyncError):
        return exc
    return SyncError(str(exc), reason=reason, retryable=exc.retryable)


def _go_list(items: Iterable[str]) -> str:
    """A ``[]string`` as Go's ``%v`` prints it: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


def _parallel_map(state: SyncState, func: Callable[[T], R], items: list[T]) -> list[R | SpecmanError]:
    """``func`` over ``items`` on at most ``state.config.parallel`` threads; a ``SpecmanError`` is returned."""

    def call(item: T) -> R | SpecmanError:
        try:
            return func(item)
        except SpecmanError as exc:
            return exc

    if len(items) <= 1 or state.config.parallel <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=state.config.parallel, thread_name_prefix="specman-sync") as pool:
        return list(pool.map(call, items))


# -- the steps --------------------------------------------------------------------------------------------


def list_tags(state: SyncState) -> None:
    """Every tag of the source (all pages).  Failing here changes nothing."""
    try:
        state.listed = list(state.source.tags())
    except SpecmanError as exc:
        raise _fail("ListTagsFailed", exc) from exc


def filter_tags(state: SyncState) -> None:
    """Keep the tags the filter selects, in the registry's order; log them as the documentation shows."""
    state.selected = state.config.tag_filter.select(state.listed)
    log.info(f"tags{_go_list(state.selected)}")
    ignored = len(state.listed) - len(state.selected)
    if ignored:
        log.info(
            "Tags not selected", extra={"fields": {"count": ignored, "filter": state.config.tag_filter.describe()}}
        )


def resolve_digests(state: SyncState) -> None:
    """The manifest digest of each selected tag (one HEAD each); tags whose version is stored are skipped."""
    outcomes = _parallel_map(state, lambda tag: state.source.resolve(tag).digest, state.selected)
    for tag, outcome in zip(state.selected, outcomes, strict=True):
        if isinstance(outcome, SpecmanError):
            state.fail_tag(tag, outcome)
        elif state.store.has_version(tag, outcome):
            state.digests[tag] = outcome
            state.skipped.append(tag)
            log.debug(f"Skipping {tag}", extra={"fields": {"digest": outcome, "why": "already stored"}})
        else:
            state.digests[tag] = outcome
            state.new.append(tag)


def fetch_versions(state: SyncState) -> None:
    """Download, verify and extract each new version into the store, ``parallel`` at a time."""
    outcomes = _parallel_map(state, lambda tag: _fetch_one(state, tag, state.digests[tag]), state.new)
    for tag, outcome in zip(state.new, outcomes, strict=True):
        if isinstance(outcome, SpecmanError):
            state.fail_tag(tag, outcome)
        else:
            state.fetched.append(tag)
            state.bytes_downloaded += outcome[1]


def publish_generation(state: SyncState) -> None:
    """Publish the new set of tags (failed tags keep their published digest) unless it is what is served."""
    published = state.store.current()
    before = published.digests() if published else {}
    wanted: dict[str, str] = {}
    for tag in state.selected:
        if tag not in state.failed:
            wanted[tag] = state.digests[tag]
        elif tag in before:
            wanted[tag] = before[tag]
            log.warning(f"Keeping {tag} at its published digest", extra={"fields": {"digest": before[tag]}})
    listed = set(state.listed)
    for tag, digest in before.items():
        if tag in wanted:
            continue
        if state.config.keep_deleted and tag not in listed and state.config.tag_filter.matches(tag):
            wanted[tag] = digest
            log.info(f"Keeping {tag} deleted in the registry", extra={"fields": {"digest": digest}})
        else:
            state.removed.append(tag)
            why = "not selected" if tag in listed else "deleted in the registry"
            log.info(f"Removing {tag}", extra={"fields": {"digest": digest, "why": why}})
    if not wanted and state.failed:
        state.generation = published  # nothing good to publish: an empty view would hide the failure
        return
    try:
        state.generation = state.store.publish(wanted)
    except SpecmanError as exc:
        raise _fail("PublishFailed", exc) from exc


def collect_garbage(state: SyncState) -> None:
    """Remove old generations and versions nothing names any more; a failure here is logged, not fatal."""
    try:
        state.store.gc()
    except StoreError as exc:
        log.warning("Garbage collection failed", extra={"fields": {"error": str(exc)}})


STEPS: Final[tuple[Step, ...]] = (
    list_tags,
    filter_tags,
    resolve_digests,
    fetch_versions,
    publish_generation,
    collect_garbage,
)


def _fetch_one(state: SyncState, tag: str, digest: str) -> tuple[Version, int]:
    """One version into the store: manifest by digest, its single archive layer streamed into ``fill``."""
    log.info(f"Downloading {tag}")
    started = time.monotonic()
    manifest = resolve_image_manifest(state.source, digest)
    reject_container_image(manifest, f"{tag} ({digest})")
    if len(manifest.layers) != 1:
        raise ContentError(f"{tag} ({digest}) has {len(manifest.layers)} layers; specman syncs one archive layer")
    layer = manifest.layers[0]
    progress = state.progress(f"sync {tag}", layer.size) if state.progress else None

    def fill(tree: Path) -> None:
        log.info(f"listing dir {tree.parent}")  # the documentation's lines: the staging dir, then the layer file
        log.info(f"filename: {layer.title or layer.digest}, isDir: false")
        extract_layer_into(state.source, layer, tree, limits=state.config.limits, progress=progress)
        log.info(f"Persisting {tag}")

    version = state.store.add_version(tag, digest, fill)
    fields = {
        "digest": digest,
        "files": version.files,
        "bytes": version.bytes,
        "layer_bytes": layer.size,
        "duration": f"{time.monotonic() - started:.3f}s",
    }
    log.info(f"Stored {tag}", extra={"fields": fields})
    return version, layer.size


# -- the runner -------------------------------------------------------------------------------------------


def reconcile_once(
    source: Repository,
    store: Store,
    config: SyncConfig | None = None,
    *,
    progress: StartProgress | None = None,
    steps: Iterable[Step] = STEPS,
) -> SyncResult:
    """Run ``steps`` once on an open ``store``; return what happened or raise ``SyncError`` (nothing published).

    ``SyncResult.ok`` is False when some tags failed; those are in ``failed`` (tag → message) and the others
    are published.
    """
    state = SyncState(source, store, config or SyncConfig(), progress)
    started, clock = datetime.now(UTC), time.monotonic()
    log.info("Syncing with OCI repo")
    error: SyncError | None = None
    try:
        for step in steps:
            step(state)
    except SyncError as exc:
        error = exc
    duration = time.monotonic() - clock
    generation = state.generation if error is None else store.current()
    result = SyncResult(
        source=source.display,
        started=started,
        finished=datetime.now(UTC),
        duration=duration,
        listed=tuple(state.listed),
        selected=tuple(state.selected),
        fetched=tuple(state.fetched),
        skipped=tuple(state.skipped),
        failed=dict(state.failed),
        removed=tuple(state.removed),
        generation=generation.number if generation else None,
        digests=generation.digests() if generation else {},
        bytes_downloaded=state.bytes_downloaded,
        failure_kinds=dict(state.failure_kinds),
    )
    _log_summary(result, error)
    if error is not None:
        error.result = result
        raise error
    return result


def _log_summary(result: SyncResult, error: SyncError | None) -> None:
    fields: dict[str, object] = {
        "source": result.source,
        "tags": len(result.selected),
        "fetched": len(result.fetched),
        "skipped": len(result.skipped),
        "failed": len(result.failed),
        "removed": len(result.removed),
        "generation": result.generation if result.generation is not None else "none",
        "bytes": result.bytes_downloaded,
        "duration": f"{result.duration:.3f}s",
    }
    if error is not None:
        fields.update(reason=error.reason, retryable=error.retryable, error=str(error))
        log.error("Sync failed", extra={"fields": fields})
    elif result.failed:
        log.warning("Sync finished with failed tags", extra={"fields": fields})
    else:
        log.info("Sync finished", extra={"fields": fields})
