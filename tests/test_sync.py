"""``specman.sync`` against the real docker-registry: one reconcile, failures per tag, filters, the CLI."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.errors import SyncError, UsageError
from specman.logs import configure
from specman.oci import (
    LayoutRepository,
    RegistryOptions,
    RemoteRepository,
    Repository,
    RetryPolicy,
    open_repository,
    parse_reference,
    push_artifact,
)
from specman.oci.manifest import OCI_INDEX, OCI_MANIFEST
from specman.store import Store
from specman.sync import Backoff, SyncConfig, SyncResult, TagFilter, reconcile_once
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.oci import push_artifact as raw_push
from tests.fixtures.oci import push_manifest, registry_client
from tests.fixtures.registry import Registry, free_port
from tests.test_cli import one_line_error, run

FAST_RETRY = RetryPolicy(attempts=2, timeout=5, wait_initial=0.05, wait_max=0.1, wait_jitter=0.05)
TIME = r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"'
TAGS = ("0.0.0", "4.5.13", "4.5.15")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("info", stream=stream)
    yield stream
    configure("warning")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data", durable=False) as opened:
        yield opened


def remote(registry: Registry, name: str | None = None, **kw: object) -> RemoteRepository:
    options = RegistryOptions(
        plain_http=registry.scheme == "http",
        ca_file=str(registry.ca_file) if registry.ca_file else None,
        retry=FAST_RETRY,
        **kw,  # type: ignore[arg-type]
    )
    repo = open_repository(parse_reference(f"{registry.host}/{name or 'sync/' + uuid.uuid4().hex[:10]}"), options)
    assert isinstance(repo, RemoteRepository)
    return repo


def push_tree(repo: Repository, tag: str, files: dict[str, str], work: Path) -> str:
    """Push a directory holding ``files`` (unique content, so blobs are never shared across tests) as ``tag``."""
    tree = work / f"tree-{uuid.uuid4().hex[:8]}"
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    (tree / ".unique").write_text(uuid.uuid4().hex)
    return push_artifact(repo, tree, tag).digest


def push_three(repo: Repository, work: Path) -> dict[str, str]:
    return {
        tag: push_tree(repo, tag, {"common.json": f'{{"from": "{tag}"}}', f"only/{tag}.json": tag}, work)
        for tag in TAGS
    }


def sync(repo: Repository, store: Store, **kw: object) -> SyncResult:
    config = {key: kw.pop(key) for key in ("tag_filter", "limits", "keep_deleted", "parallel") if key in kw}
    return reconcile_once(repo, store, SyncConfig(**config), **kw)  # type: ignore[arg-type]


def view(store: Store) -> Path:
    generation = store.current()
    assert generation is not None
    return generation.tree


def test_sync_merge_skip_add_retag_delete(
    plain_registry: Registry, store: Store, tmp_path: Path, log_lines: io.StringIO
) -> None:
    repo = remote(plain_registry)
    digests = push_three(repo, tmp_path)

    first = sync(repo, store)
    assert first.ok and set(first.fetched) == set(TAGS) and not first.skipped
    assert first.digests == digests and first.generation == 1
    assert first.bytes_downloaded > 0
    assert (view(store) / "common.json").read_text() == '{"from": "4.5.15"}'  # later (semver) wins
    assert {p.name for p in (view(store) / "only").iterdir()} == {f"{t}.json" for t in TAGS}

    out = log_lines.getvalue().splitlines()
    assert re.fullmatch(TIME + r' level=info msg="Syncing with OCI repo"', out[0])
    assert out[1].endswith(f'level=info msg="tags[{" ".join(repo.tags())}]"')  # the registry's order, as Go prints
    for tag in TAGS:
        assert any(line.endswith(f'level=info msg="Downloading {tag}"') for line in out)
        assert any(line.endswith(f'level=info msg="Persisting {tag}"') for line in out)
        stored = next(line for line in out if f'msg="Stored {tag}"' in line)
        assert f'digest="{digests[tag]}"' in stored and "files=3" in stored and re.search(r"duration=[\d.]+s", stored)
        assert out.index(next(x for x in out if x.endswith(f'"Downloading {tag}"'))) < out.index(
            next(x for x in out if x.endswith(f'"Persisting {tag}"'))
        )
    assert re.search(r"level=info msg=\"Sync finished\" .*failed=0 fetched=3 generation=1", out[-1])

    again = sync(repo, store)
    assert again.ok and not again.fetched and set(again.skipped) == set(TAGS) and again.generation == 1

    new = push_tree(repo, "4.6.0", {"common.json": "4.6.0"}, tmp_path)
    retagged = push_tree(repo, "0.0.0", {"common.json": "retagged", "fresh.json": "x"}, tmp_path)
    third = sync(repo, store)
    assert sorted(third.fetched) == ["0.0.0", "4.6.0"] and third.generation == 2
    assert third.digests["0.0.0"] == retagged and third.digests["4.6.0"] == new
    assert (view(store) / "fresh.json").exists() and not (view(store) / "only" / "0.0.0.json").exists()
    assert (view(store) / "common.json").read_text() == "4.6.0"

    repo.delete_manifest(new)
    kept = sync(repo, store, keep_deleted=True)
    assert "4.6.0" in kept.digests and not kept.removed
    dropped = sync(repo, store)
    assert dropped.removed == ("4.6.0",) and "4.6.0" not in dropped.digests
    assert (view(store) / "common.json").read_text() == '{"from": "4.5.15"}'
    assert 'msg="Removing 4.6.0"' in log_lines.getvalue() and 'why="deleted in the registry"' in log_lines.getvalue()


def _blob_data(registry: Registry, digest: str) -> Path:
    hex_ = digest.removeprefix("sha256:")
    return registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_corrupt_blob_keeps_the_published_version(
    plain_registry: Registry, store: Store, tmp_path: Path, log_lines: io.StringIO
) -> None:
    repo = remote(plain_registry)
    before = push_three(repo, tmp_path)
    assert sync(repo, store).ok

    newer = push_tree(repo, "4.5.15", {"common.json": "broken push"}, tmp_path)
    push_tree(repo, "4.7.0", {"new.json": "fine"}, tmp_path)
    layer = repo.fetch_manifest(newer).layers[0]
    data = _blob_data(plain_registry, layer.digest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))

    result = sync(repo, store)
    assert not result.ok and list(result.failed) == ["4.5.15"]
    assert "digest mismatch" in result.failed["4.5.15"] and layer.digest in result.failed["4.5.15"]
    assert result.fetched == ("4.7.0",)
    assert result.digests["4.5.15"] == before["4.5.15"]  # the good old version stays
    assert (view(store) / "common.json").read_text() == '{"from": "4.5.15"}'
    assert (view(store) / "new.json").read_text() == "fine"
    assert not store.has_version("4.5.15", newer)
    error = next(line for line in log_lines.getvalue().splitlines() if "level=error" in line)
    assert 'msg="Failed to sync 4.5.15"' in error and "digest mismatch" in error and f'digest="{newer}"' in error
    assert "Sync finished with failed tags" in log_lines.getvalue()


def test_hostile_layer_fails_alone(plain_registry: Registry, store: Store, tmp_path: Path) -> None:
    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    evil = tmp_path / "manifests.tgz"
    evil.write_bytes(make_tar([Entry("ok.json", data=b"{}"), Entry("../escape.json", data=b"evil")]))
    push_artifact(repo, evil, "2.0.0")

    result = sync(repo, store)
    assert list(result.failed) == ["2.0.0"] and "'../escape.json'" in result.failed["2.0.0"]
    assert result.fetched == ("1.0.0",) and list(result.digests) == ["1.0.0"]
    assert not (tmp_path / "data" / "escape.json").exists()


def test_wrong_kinds_of_content_fail_alone(plain_registry: Registry, store: Store, tmp_path: Path) -> None:
    """An index of two images, a layer that is no archive, two layers, a missing blob: each tag fails with its
    reason, the good tag is published."""
    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    with registry_client(plain_registry) as client:
        images = [raw_push(client, repo.name, f"img-{i}", {"f": f"{i}".encode()}).digest for i in range(2)]
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1} for d in images],
        }
        push_manifest(client, repo.name, "2.0.0", json.dumps(index).encode(), OCI_INDEX)
        raw_push(client, repo.name, "3.0.0", {"manifests.tgz": b'{"not": "an archive"}'})
        raw_push(client, repo.name, "4.0.0", {"a.tgz": make_tar([Entry("x", data=b"x")]), "b.tgz": b"y"})
        missing = raw_push(client, repo.name, "5.0.0", {"manifests.tgz": make_tar([Entry("gone", data=b"z")])})
    layer = repo.fetch_manifest(missing.digest).layers[0]
    _blob_data(plain_registry, layer.digest).unlink()

    result = sync(repo, store)
    assert {"2.0.0", "3.0.0", "4.0.0", "5.0.0"} <= set(result.failed)  # img-0/1 fail too: "f" is no archive
    assert "index of 2 manifests" in result.failed["2.0.0"]
    assert "archive" in result.failed["3.0.0"].lower() or "gzip" in result.failed["3.0.0"].lower()
    assert "2 layers" in result.failed["4.0.0"]
    assert "not found" in result.failed["5.0.0"].lower() or "unknown" in result.failed["5.0.0"].lower()
    assert "1.0.0" in result.digests and (view(store) / "a.json").read_text() == "1"
    assert result.failure_kinds["2.0.0"] == "ContentError" and result.failure_kinds["4.0.0"] == "ContentError"


def test_filters_select_tags(plain_registry: Registry, store: Store, tmp_path: Path, log_lines: io.StringIO) -> None:
    repo = remote(plain_registry)
    push_three(repo, tmp_path)
    result = sync(repo, store, tag_filter=TagFilter(("4.5.*",), ">=4.5.0 <4.5.14"))
    assert result.selected == ("4.5.13",) and list(result.digests) == ["4.5.13"]
    assert 'msg="tags[4.5.13]"' in log_lines.getvalue()
    wider = sync(repo, store, tag_filter=TagFilter(semver="^4"))
    assert sorted(wider.digests) == ["4.5.13", "4.5.15"] and wider.skipped == ("4.5.13",)


@pytest.mark.parametrize(
    ("globs", "semver", "selected"),
    [
        ((), None, ["0.0.0", "4.5.13", "4.5.15", "latest", "v5.1"]),
        (("4.*",), None, ["4.5.13", "4.5.15"]),
        (("0.*", "latest"), None, ["0.0.0", "latest"]),
        ((), ">=4.5.0 <5", ["4.5.13", "4.5.15"]),
        ((), "~4.5.14", ["4.5.15"]),
        ((), "0.0.0 || >=5", ["0.0.0", "v5.1"]),
        ((), "^0.0.0", ["0.0.0"]),
        (("4.5.1*",), "<4.5.15", ["4.5.13"]),
    ],
)
def test_tag_filter(globs: tuple[str, ...], semver: str | None, selected: list[str]) -> None:
    tags = ["0.0.0", "4.5.13", "4.5.15", "latest", "v5.1"]
    assert TagFilter(globs, semver).select(tags) == selected


@pytest.mark.parametrize("bad", [">=four", ">=1 ||", "<<1"])
def test_bad_semver_range(bad: str) -> None:
    with pytest.raises(UsageError, match="semver range"):
        TagFilter(semver=bad)


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=1.0, cap=300.0)
    assert [backoff.delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 10, 50)] == [1.0, 2.0, 4.0, 300.0, 300.0]
    assert backoff.delay(3, rng=lambda: 0.0) == 2.0


def test_oci_layout_source(store: Store, tmp_path: Path) -> None:
    layout = LayoutRepository(tmp_path / "layout", create=True)
    digests = push_three(layout, tmp_path)
    result = sync(layout, store, parallel=3)
    assert result.ok and result.digests == digests
    assert (view(store) / "common.json").read_text() == '{"from": "4.5.15"}'


def test_unreachable_source_changes_nothing(registry_factory, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = registry_factory("plain")
    repo = remote(registry)
    push_three(repo, tmp_path)
    assert sync(repo, store).generation == 1
    registry.stop()
    with pytest.raises(SyncError) as info:
        sync(repo, store)
    assert info.value.reason == "ListTagsFailed" and info.value.retryable
    current = store.current()
    assert current is not None and current.number == 1
    assert not list(store.staging_dir.iterdir())


def test_cli_sync_once(registry_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = registry_factory("plain")
    name = f"sync/{uuid.uuid4().hex[:10]}"
    digests = push_three(remote(registry, name), tmp_path)
    data = tmp_path / "data"
    ok = run("sync", f"{registry.host}/{name}", "--data-dir", str(data), "--once", "--plain-http")
    assert ok.returncode == 0, ok.stderr
    assert sorted(ok.stdout.splitlines()) == sorted(["generation 1", *(f"{tag} {digests[tag]}" for tag in TAGS)])
    assert re.search(r'level=info msg="tags\[[0-9. ]+\]"', ok.stderr)
    assert 'level=info msg="Downloading 0.0.0"' in ok.stderr

    registry.stop()
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    env = {"SPECMAN_SOURCE": f"{registry.host}/{name}", "SPECMAN_DATA_DIR": str(data)}
    down = run("sync", "--once", "--plain-http", env=env)
    assert down.returncode == 1
    assert "connect" in one_line_error(down).lower()
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == before
    assert (data / "current").resolve().name == "1"


def test_cli_sync_token_auth(token_registry: Registry, tmp_path: Path) -> None:
    name = f"sync/{uuid.uuid4().hex[:10]}"
    repo = remote(token_registry, name, username="alice", password=token_registry.users["alice"])
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    args = ["sync", f"{token_registry.host}/{name}", "--data-dir", str(tmp_path / "data"), "--once"]
    args += ["-u", "alice", "--password-stdin", "--ca-file", str(token_registry.ca_file), "--tags", "1.*"]
    proc = run(*args, stdin=token_registry.users["alice"] + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["generation 1", f"1.0.0 {digest}"]
    assert token_registry.users["alice"] not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [(["--interval", "soon"], "not a positive duration"), ([], "data-dir")])
def test_cli_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    extra = ["--data-dir", str(tmp_path)] if "--interval" in args else []
    proc = run("sync", "localhost:5000/x", *extra, *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_library_logger_name() -> None:
    assert logging.getLogger("specman.sync").name == "specman.sync"


def test_sigterm_ends_a_retrying_sync_at_its_next_failure(tmp_path: Path) -> None:
    """``specman sync`` (the loop) against a registry nobody answers for: SIGTERM during its back-offs stops it at
    the next failed attempt, not after all of them (5 attempts with waits up to 10 s)."""
    source = f"127.0.0.1:{free_port()}/nobody/listens"
    log_file = tmp_path / "sync.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "specman", "sync", source, "--plain-http", "--data-dir", str(tmp_path / "d")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "retrying in" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "retrying in" in log_file.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.wait()
    text = log_file.read_text()
    assert "retry 4" not in text  # the retries ended with the signal (the exact count depends on timing)
    assert 'msg="Sync failed"' in text and "ListTagsFailed" in text
