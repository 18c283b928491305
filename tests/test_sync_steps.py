"""The reconcile steps of ``specman.sync.reconcile.STEPS``, one at a time and table-driven (as Flux tests its
reconcile steps), against the real docker-registry; the end-to-end reconciles stay in ``test_sync.py``.

Each case prepares a ``SyncState`` as the steps before it would have left it, runs one step and checks what that
step alone changed: its fields of the state, the store, and the error it raised (reason, retryability).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from specman.errors import SyncError
from specman.oci import RemoteRepository, Repository
from specman.store import Store
from specman.sync import STEPS, SyncConfig, SyncState, TagFilter
from specman.sync.reconcile import (
    collect_garbage,
    fetch_versions,
    filter_tags,
    list_tags,
    publish_generation,
    resolve_digests,
)
from tests.fixtures.registry import Registry, free_port
from tests.test_sync import push_tree, remote


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data", durable=False) as opened:
        yield opened


def state_of(repo: Repository, store: Store, **config: object) -> SyncState:
    return SyncState(repo, store, SyncConfig(**config), None)  # type: ignore[arg-type]


def test_steps_run_in_the_documented_order() -> None:
    assert (list_tags, filter_tags, resolve_digests, fetch_versions, publish_generation, collect_garbage) == STEPS


@dataclass
class FilterCase:
    listed: list[str]
    config: dict[str, object]
    selected: list[str]


@pytest.mark.parametrize(
    "case",
    [
        FilterCase(["0.0.0", "4.5.13", "4.5.15"], {}, ["0.0.0", "4.5.13", "4.5.15"]),
        FilterCase(["0.0.0", "4.5.13", "4.5.15"], {"tag_filter": TagFilter(("4.*",))}, ["4.5.13", "4.5.15"]),
        FilterCase(["0.0.0", "4.5.13", "5.0.0"], {"tag_filter": TagFilter((), ">=4.5.0 <5")}, ["4.5.13"]),
        FilterCase(["latest", "dev"], {"tag_filter": TagFilter((), ">=1")}, []),
        FilterCase([], {}, []),
    ],
    ids=["all", "glob", "semver", "none-semver", "empty"],
)
def test_filter_tags(case: FilterCase, tmp_path: Path) -> None:
    """filter_tags needs no registry: it reads ``listed`` and writes ``selected``, in the registry's order."""
    with Store(tmp_path / "data", durable=False) as store:
        state = state_of(None, store, **case.config)  # type: ignore[arg-type]
        state.listed = list(case.listed)
        filter_tags(state)
        assert state.selected == case.selected


@dataclass
class Prepared:
    repo: RemoteRepository
    digests: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def prepared(plain_registry: Registry, tmp_path: Path) -> Iterator[Prepared]:
    """A repository of its own holding 1.0.0 and 2.0.0."""
    repo = remote(plain_registry, f"steps/{uuid.uuid4().hex[:10]}")
    done = Prepared(repo)
    for tag in ("1.0.0", "2.0.0"):
        done.digests[tag] = push_tree(repo, tag, {f"{tag}.json": tag}, tmp_path)
    yield done
    repo.close()


def _nothing_listening() -> Registry:
    """A registry address where nothing listens (a registry that is down)."""
    return SimpleNamespace(scheme="http", ca_file=None, host=f"127.0.0.1:{free_port()}")  # type: ignore[return-value]


def test_list_tags_reads_every_tag(prepared: Prepared, store: Store) -> None:
    state = state_of(prepared.repo, store)
    list_tags(state)
    assert sorted(state.listed) == ["1.0.0", "2.0.0"]


@pytest.mark.parametrize(
    ("make_repo", "reason", "retryable"),
    [
        (lambda registry: remote(registry, "steps/missing-" + uuid.uuid4().hex[:8]), "ListTagsFailed", False),
        (lambda registry: remote(_nothing_listening()), "ListTagsFailed", True),
    ],
    ids=["unknown-repository", "registry-down"],
)
def test_list_tags_failure_carries_reason_and_retryability(
    make_repo: Callable[[Registry], RemoteRepository],
    reason: str,
    retryable: bool,
    plain_registry: Registry,
    store: Store,
) -> None:
    repo = make_repo(plain_registry)
    state = state_of(repo, store)
    with pytest.raises(SyncError) as caught:
        list_tags(state)
    assert (caught.value.reason, caught.value.kind, caught.value.retryable) == (reason, reason, retryable)
    assert state.listed == [] and store.current() is None
    repo.close()


@pytest.mark.parametrize(
    ("stored", "selected", "new", "skipped", "failed"),
    [
        ((), ("1.0.0", "2.0.0"), ["1.0.0", "2.0.0"], [], []),
        (("1.0.0",), ("1.0.0", "2.0.0"), ["2.0.0"], ["1.0.0"], []),
        ((), ("1.0.0", "9.9.9"), ["1.0.0"], [], ["9.9.9"]),
    ],
    ids=["all-new", "one-stored", "one-unknown"],
)
def test_resolve_digests(
    stored: tuple[str, ...],
    selected: tuple[str, ...],
    new: list[str],
    skipped: list[str],
    failed: list[str],
    prepared: Prepared,
    store: Store,
) -> None:
    for tag in stored:
        store.add_version(tag, prepared.digests[tag], lambda tree: (tree / "x").write_text("x"))
    state = state_of(prepared.repo, store)
    state.selected = list(selected)
    resolve_digests(state)
    assert (state.new, state.skipped, sorted(state.failed)) == (new, skipped, failed)
    for tag in [*new, *skipped]:
        assert state.digests[tag] == prepared.digests[tag]
    assert set(state.failure_kinds.values()) <= {"NotFoundError"}


def test_fetch_versions_stores_each_new_version(prepared: Prepared, store: Store) -> None:
    state = state_of(prepared.repo, store, parallel=2)
    state.selected = state.new = ["1.0.0", "2.0.0"]
    state.digests = dict(prepared.digests)
    fetch_versions(state)
    assert sorted(state.fetched) == ["1.0.0", "2.0.0"] and not state.failed
    assert state.bytes_downloaded > 0
    for tag, digest in prepared.digests.items():
        version = store.version(tag, digest)
        assert version is not None and (version.tree / f"{tag}.json").read_text() == tag
    assert store.current() is None  # fetching publishes nothing


def test_fetch_versions_records_a_bad_digest_per_tag(prepared: Prepared, store: Store) -> None:
    state = state_of(prepared.repo, store)
    state.selected = state.new = ["1.0.0"]
    state.digests = {"1.0.0": "sha256:" + "0" * 64}
    fetch_versions(state)
    assert state.fetched == [] and list(state.failed) == ["1.0.0"]
    assert store.version("1.0.0", "sha256:" + "0" * 64) is None


BOTH = ("1.0.0", "2.0.0")


@dataclass
class PublishCase:
    before: tuple[str, ...]  # tags published before the step
    selected: tuple[str, ...]
    failed: tuple[str, ...]
    keep_deleted: bool
    listed: tuple[str, ...]
    published: tuple[str, ...]  # tags of the generation afterwards
    removed: tuple[str, ...]


@pytest.mark.parametrize(
    "case",
    [
        PublishCase((), ("1.0.0", "2.0.0"), (), False, ("1.0.0", "2.0.0"), ("1.0.0", "2.0.0"), ()),
        PublishCase(("1.0.0", "2.0.0"), ("1.0.0",), (), False, ("1.0.0",), ("1.0.0",), ("2.0.0",)),
        PublishCase(("1.0.0", "2.0.0"), ("1.0.0",), (), True, ("1.0.0",), ("1.0.0", "2.0.0"), ()),
        PublishCase(
            ("1.0.0", "2.0.0"), ("1.0.0", "2.0.0"), ("2.0.0",), False, ("1.0.0", "2.0.0"), ("1.0.0", "2.0.0"), ()
        ),
        PublishCase((), ("2.0.0",), ("2.0.0",), False, ("2.0.0",), (), ()),
    ],
    ids=["first", "deleted-removed", "deleted-kept", "failed-keeps-published", "only-failures-publish-nothing"],
)
def test_publish_generation(case: PublishCase, prepared: Prepared, store: Store) -> None:
    for tag in {*case.before, *case.selected}:
        store.add_version(tag, prepared.digests[tag], lambda tree, t=tag: (tree / f"{t}.json").write_text(t))
    if case.before:
        store.publish({tag: prepared.digests[tag] for tag in case.before})
    state = state_of(prepared.repo, store, keep_deleted=case.keep_deleted)
    state.listed, state.selected = list(case.listed), list(case.selected)
    state.digests = {tag: prepared.digests[tag] for tag in case.selected}
    for tag in case.failed:
        state.failed[tag] = "failed in an earlier step"
    publish_generation(state)
    generation = store.current()
    assert (tuple(sorted(generation.tags)) if generation else ()) == case.published
    assert tuple(sorted(state.removed)) == case.removed


def test_collect_garbage_keeps_what_is_served(prepared: Prepared, store: Store) -> None:
    for tag, digest in prepared.digests.items():
        store.add_version(tag, digest, lambda tree, t=tag: (tree / f"{t}.json").write_text(t))
    for published in ({"1.0.0": prepared.digests["1.0.0"]}, {"2.0.0": prepared.digests["2.0.0"]}) * 2:
        store.publish(published)
    state = state_of(prepared.repo, store)
    collect_garbage(state)
    served = store.current()
    assert served is not None and list(served.tags) == ["2.0.0"]
    assert (served.tree / "2.0.0.json").read_text() == "2.0.0"
    assert store.version("2.0.0", prepared.digests["2.0.0"]) is not None
