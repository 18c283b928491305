"""specman.store on real files: versions, merged generations, conflicts, GC, recovery, kill -9, lock, disk full."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from specman.errors import ArchiveError, StoreError
from specman.store import Store, load_current, ordered_tags, version_id

Files = dict[str, bytes]


def digest_of(tag: str, salt: str = "") -> str:
    return "sha256:" + hashlib.sha256(f"{tag}{salt}".encode()).hexdigest()


def writer(files: Files, links: dict[str, str] | None = None) -> Callable[[Path], None]:
    def fill(tree: Path) -> None:
        for name, data in files.items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(data)
        for name, target in (links or {}).items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, tree / name)

    return fill


def snapshot(tree: Path) -> Files:
    """Every regular file below ``tree`` (relative path -> content); symlinks as ``-> target``."""
    found: Files = {}
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.is_symlink():
            found[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as opened:
        yield opened


def add(store: Store, tag: str, files: Files, salt: str = "") -> str:
    digest = digest_of(tag, salt)
    store.add_version(tag, digest, writer(files))
    return digest


def leftovers(store: Store) -> list[str]:
    return sorted(p.name for p in store.staging_dir.iterdir()) + sorted(
        p.name for p in store.data_dir.glob("current.tmp-*")
    )


def test_add_publish_read_back(store: Store) -> None:
    assert store.current() is None
    assert store.status()["generation"] is None
    digest = digest_of("1.0.0")
    assert not store.has_version("1.0.0", digest)
    version = store.add_version("1.0.0", digest, writer({"a.json": b"{}", "d/b.yaml": b"x: 1\n"}, {"l": "d/b.yaml"}))
    assert store.has_version("1.0.0", digest)
    assert (version.files, version.bytes) == (2, 7)
    assert version.path.name == version_id("1.0.0", digest) == f"1.0.0@sha256-{digest[7:]}"
    assert json.loads((version.path / "version.json").read_text())["digest"] == digest
    assert store.add_version("1.0.0", digest, lambda tree: pytest.fail("fill called twice")) == version

    generation = store.publish({"1.0.0": digest})
    assert generation.number == 1
    assert os.readlink(store.data_dir / "current") == "generations/1"
    view = snapshot(store.data_dir / "current" / "tree")
    assert view == {"a.json": b"{}", "d/b.yaml": b"x: 1\n", "l": b"-> d/b.yaml"}
    assert (generation.files, generation.dirs, generation.symlinks) == (2, 1, 1)
    assert os.stat(generation.tree / "a.json").st_ino == os.stat(version.tree / "a.json").st_ino  # no copy
    assert store.current() == load_current(store.data_dir) == generation
    assert store.per_version_tree("1.0.0") == version.tree
    assert store.per_version_tree("2.0.0") is None
    assert store.publish({"1.0.0": digest}) == generation  # nothing changed: no new generation
    status = store.status()
    assert set(status.pop("storage")["volume"]) == {"bytes_total", "bytes_free", "inodes_total", "inodes_free"}
    assert status == {
        "generation": 1,
        "created": generation.created,
        "tags": {"1.0.0": digest},
        "files": 2,
        "conflicts": 0,
    }
    assert leftovers(store) == []


def test_order_and_conflicts(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    tags = ["latest", "4.5.15", "0.0.0", "4.5.13"]
    assert ordered_tags(tags) == ["0.0.0", "4.5.13", "4.5.15", "latest"]
    assert ordered_tags(["v2.0.0", "10.0.0", "1.0.0-rc.1", "1.0.0", "stable", "2.0"]) == [
        "1.0.0-rc.1",
        "1.0.0",
        "2.0",
        "v2.0.0",
        "10.0.0",
        "stable",
    ]
    digests = {tag: add(store, tag, {"common.json": tag.encode(), f"only-{tag}.json": b"1"}) for tag in tags}
    digests["4.5.13"] = add(store, "4.5.13", {"common.json": b"4.5.13", "pair.json": b"13"}, salt="2")
    digests["4.5.15"] = add(store, "4.5.15", {"common.json": b"4.5.15", "pair.json": b"15"}, salt="2")
    with caplog.at_level(logging.INFO, logger="specman.store"):
        generation = store.publish(digests)
    view = snapshot(generation.tree)
    assert view["common.json"] == b"latest"
    assert view["pair.json"] == b"15"
    assert {name for name in view if name.startswith("only-")} == {"only-0.0.0.json", "only-latest.json"}
    assert [(c.path, c.winner, c.loser, c.kind) for c in generation.conflicts] == [
        ("common.json", "4.5.13", "0.0.0", "file"),
        ("common.json", "4.5.15", "4.5.13", "file"),
        ("common.json", "latest", "4.5.15", "file"),
        ("pair.json", "4.5.15", "4.5.13", "file"),
    ]
    recorded = json.loads((generation.path / "generation.json").read_text())
    assert len(recorded["conflicts"]) == 4
    assert list(recorded["tags"]) == sorted(tags)  # json keys sorted; the order of layering is ordered_tags
    assert "path conflict common.json (file): latest wins over 4.5.15" in caplog.text
    assert store.status()["conflicts"] == 4


def test_file_versus_directory(store: Store) -> None:
    one = add(store, "1.0.0", {"a/b.json": b"b", "a/c/d.json": b"d", "x": b"file x", "keep.json": b"k"})
    two = add(store, "2.0.0", {"a": b"file a", "x/y.json": b"y"})
    generation = store.publish({"2.0.0": two, "1.0.0": one})
    assert snapshot(generation.tree) == {"a": b"file a", "x/y.json": b"y", "keep.json": b"k"}
    assert {(c.path, c.kind, c.winner, c.loser) for c in generation.conflicts} == {
        ("a", "file-over-directory", "2.0.0", "1.0.0"),
        ("x", "directory-over-file", "2.0.0", "1.0.0"),
    }
    assert generation.files == 3
    # a symlink is a file here: it replaces a directory and a directory replaces it
    three = add(store, "3.0.0", {"x": b"back to a file"})
    store.add_version("4.0.0", digest_of("4.0.0"), writer({}, {"a": "keep.json"}))
    generation = store.publish({"1.0.0": one, "2.0.0": two, "3.0.0": three, "4.0.0": digest_of("4.0.0")})
    assert snapshot(generation.tree) == {"a": b"-> keep.json", "x": b"back to a file", "keep.json": b"k"}


def test_deleted_tag_leaves_the_view(store: Store) -> None:
    one = add(store, "1.0.0", {"one.json": b"1", "shared/s.json": b"one"})
    two = add(store, "2.0.0", {"two.json": b"2", "shared/s.json": b"two"})
    store.publish({"1.0.0": one, "2.0.0": two})
    generation = store.publish({"1.0.0": one})
    assert snapshot(generation.tree) == {"one.json": b"1", "shared/s.json": b"one"}
    assert store.status()["tags"] == {"1.0.0": one}
    assert store.per_version_tree("2.0.0") is None
    with pytest.raises(StoreError, match=r"cannot publish tag 3\.0\.0: version .* is not in the store"):
        store.publish({"3.0.0": digest_of("3.0.0")})
    assert store.current() == generation


def test_gc_keeps_current_and_newest(store: Store) -> None:
    digests = [add(store, "1.0.0", {"f.json": f"v{i}".encode()}, salt=str(i)) for i in range(4)]
    for digest in digests:
        store.publish({"1.0.0": digest})
    extra = add(store, "9.9.9", {"never.json": b"published"})
    assert store.current() is not None
    result = store.gc(keep=2)
    assert result.generations == (1, 2)
    unreferenced = {version_id("1.0.0", digests[0]), version_id("1.0.0", digests[1]), version_id("9.9.9", extra)}
    assert set(result.versions) == unreferenced
    assert not result.more
    assert sorted(p.name for p in store.generations_dir.iterdir()) == ["3", "4"]
    assert snapshot(store.generations_dir / "3" / "tree") == {"f.json": b"v2"}
    assert snapshot(store.generations_dir / "4" / "tree") == {"f.json": b"v3"}
    assert store.gc(keep=2) == type(result)((), (), False)
    limited = store.gc(keep=1, limit=0)
    assert limited.more
    assert store.gc(keep=1).generations == (3,)
    assert sorted(p.name for p in store.versions_dir.iterdir()) == [version_id("1.0.0", digests[3])]
    with pytest.raises(ValueError, match="at least"):
        store.gc(keep=0)
    assert leftovers(store) == []


def test_generation_files_outlive_their_version(store: Store) -> None:
    digest = add(store, "1.0.0", {"f.json": b"content"})
    generation = store.publish({"1.0.0": digest})
    other = add(store, "2.0.0", {"g.json": b"g"})
    store.publish({"2.0.0": other})
    store.gc(keep=2)  # generation 1 is kept, so is its version
    assert store.has_version("1.0.0", digest)
    version_dir = store.versions_dir / version_id("1.0.0", digest)
    os.rename(version_dir, store.staging_dir / "gone")  # what gc does to a version (then it deletes it)
    store.recover()
    assert not version_dir.exists()
    assert (generation.tree / "f.json").read_bytes() == b"content"  # the inode lives on in the generation


def test_recovery_removes_leftovers_and_keeps_current(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        digest = add(store, "1.0.0", {"f.json": b"1"})
        generation = store.publish({"1.0.0": digest})
        before = snapshot(generation.tree)
        published_version = store.versions_dir / version_id("1.0.0", digest)
    # the states a crash can leave, one per step
    (data / "staging" / "version-x.123" / "tree").mkdir(parents=True)
    (data / "staging" / "version-x.123" / "tree" / "half.json").write_bytes(b"{")
    (data / "staging" / "generation-2.abc" / "tree").mkdir(parents=True)
    no_marker = data / "versions" / version_id("2.0.0", digest_of("2.0.0"))
    (no_marker / "tree").mkdir(parents=True)
    bad_marker = data / "versions" / version_id("3.0.0", digest_of("3.0.0"))
    (bad_marker / "tree").mkdir(parents=True)
    (bad_marker / "version.json").write_text("{not json")
    (data / "generations" / "2" / "tree").mkdir(parents=True)  # renamed in without a record: impossible but handled
    unpublished = data / "generations" / "3"
    (unpublished / "tree").mkdir(parents=True)
    (unpublished / "generation.json").write_text((generation.path / "generation.json").read_text())
    os.symlink("generations/3", data / "current.tmp-0123abcd")
    os.symlink("generations/9", data / "current.tmp-dangling")

    with caplog.at_level(logging.WARNING, logger="specman.store"), Store(data) as store:
        assert leftovers(store) == []
        assert sorted(p.name for p in store.generations_dir.iterdir()) == ["1"]
        assert sorted(p.name for p in store.versions_dir.iterdir()) == [published_version.name]
        current = store.current()
        assert current is not None
        assert current.number == 1
        assert snapshot(current.tree) == before
        assert store.publish({"1.0.0": digest}).number == 1
    assert "generation built but never published" in caplog.text
    assert "version without a valid version.json" in caplog.text


def test_recovery_keeps_versions_current_needs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        digest = add(store, "1.0.0", {"f.json": b"1"})
        store.publish({"1.0.0": digest})
    (data / "versions" / version_id("1.0.0", digest) / "version.json").unlink()
    with Store(data) as store:
        assert (data / "versions" / version_id("1.0.0", digest) / "tree" / "f.json").exists()
        assert store.per_version_tree("1.0.0") is not None


def test_lock_excludes_a_second_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Store(data).open()
    with pytest.raises(StoreError, match=rf"data dir {data} is in use by another specman \(pid {os.getpid()}\)"):
        Store(data).open()
    code = f"from specman.store import Store; from pathlib import Path; Store(Path({str(data)!r})).open()"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert other.returncode != 0
    assert f"is in use by another specman (pid {os.getpid()})" in other.stderr
    first.close()
    with Store(data):
        pass
    with pytest.raises(StoreError, match="is not open"):
        Store(data).publish({})


def test_invalid_names_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="not an OCI tag"):
        store.has_version("../x", digest_of("x"))
    with pytest.raises(StoreError, match="invalid digest"):
        store.has_version("1.0.0", "sha256:../../etc")


def test_disk_full_while_adding_a_version(store: Store) -> None:
    digest = add(store, "1.0.0", {"f.json": b"1"})
    generation = store.publish({"1.0.0": digest})

    def full(tree: Path) -> None:
        (tree / "partial.json").write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tree / "big.json"))

    with pytest.raises(StoreError, match=r"disk full while adding version 2\.0\.0"):
        store.add_version("2.0.0", digest_of("2.0.0"), full)

    def archive_full(tree: Path) -> None:  # what extract_into raises: an ArchiveError caused by the OSError
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise ArchiveError("cannot write big.json: No space left on device") from exc

    with pytest.raises(StoreError, match="disk full while adding version"):
        store.add_version("2.0.0", digest_of("2.0.0"), archive_full)

    def broken(tree: Path) -> None:
        raise ArchiveError("unsafe archive member '../x'")

    with pytest.raises(ArchiveError, match="unsafe"):
        store.add_version("2.0.0", digest_of("2.0.0"), broken)
    assert not store.has_version("2.0.0", digest_of("2.0.0"))
    assert leftovers(store) == []
    assert store.current() == generation


def test_disk_full_while_publishing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    one = add(store, "1.0.0", {f"d/f{i}.json": b"1" for i in range(50)})
    generation = store.publish({"1.0.0": one})
    two = add(store, "2.0.0", {f"e/f{i}.json": b"2" for i in range(50)})
    real_link = os.link
    calls = 0

    def link(source: str, target: str, **kwargs: bool) -> None:
        nonlocal calls
        calls += 1
        if calls > 70:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        real_link(source, target, **kwargs)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(StoreError, match=r"disk full while publishing generation 2"):
        store.publish({"1.0.0": one, "2.0.0": two})
    monkeypatch.undo()
    assert store.current() == generation
    assert os.readlink(store.data_dir / "current") == "generations/1"
    assert sorted(p.name for p in store.generations_dir.iterdir()) == ["1"]
    assert leftovers(store) == []
    assert store.publish({"1.0.0": one, "2.0.0": two}).number == 2


def test_merging_many_files(store: Store) -> None:
    """10,000 paths in two versions: different bytes are conflicts, identical bytes are not (timing: benchmarks)."""
    files = {f"d{i % 100}/f{i}.json": b"{}" for i in range(10_000)}
    changed = {path: (b'{"v": 2}' if i % 2 else data) for i, (path, data) in enumerate(files.items())}
    one = add(store, "1.0.0", files)
    two = add(store, "2.0.0", changed, salt="2")
    generation = store.publish({"1.0.0": one, "2.0.0": two})
    assert generation.files == 10_000
    assert len(generation.conflicts) == 5_000
    assert {c.winner for c in generation.conflicts} == {"2.0.0"}


# -- kill -9 at random instants -----------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from specman.store import Store

    def content(tag, i):
        return (f"{tag}:{i}\\n" * (1 + i % 5)).encode()

    def indices(k):
        return range((k % 3) * 300, (k % 3) * 300 + 2000)

    def fill_for(tag, k):
        def fill(tree):
            for d in range(20):
                (tree / f"d{d}").mkdir()
            for i in indices(k):
                (tree / f"d{i % 20}" / f"f{i}.json").write_bytes(content(tag, i))
        return fill

    with Store(Path(sys.argv[1])) as store:
        current = store.current()
        k = max((int(tag.split(".")[1]) for tag in current.tags), default=0) if current else 0
        previous = None
        print("ready", flush=True)
        while True:
            k += 1
            tag = f"1.{k}.0"
            digest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
            store.add_version(tag, digest, fill_for(tag, k))
            tags = {tag: digest} if previous is None else {previous[0]: previous[1], tag: digest}
            store.publish(tags)
            print("published", flush=True)
            store.gc(keep=2)
            previous = (tag, digest)
    """
)


def _expected_view(tags: list[str]) -> dict[str, int]:
    """Path -> size of the merged view of the worker's tags (same layering: later k wins)."""
    view: dict[str, int] = {}
    for tag in ordered_tags(tags):
        k = int(tag.split(".")[1])
        if k == 0:
            continue  # 1.0.0: the empty first version
        for i in range((k % 3) * 300, (k % 3) * 300 + 2000):
            view[f"d{i % 20}/f{i}.json"] = len(f"{tag}:{i}\n") * (1 + i % 5)
    return view


def _check_consistent(data: Path) -> int:
    with Store(data) as store:
        assert leftovers(store) == []
        current = store.current()
        assert current is not None
        numbers = sorted(int(p.name) for p in store.generations_dir.iterdir())
        assert numbers[-1] == current.number
        for number in numbers:
            assert (store.generations_dir / str(number) / "generation.json").is_file()
        expected = _expected_view(list(current.tags))
        actual = {
            path.relative_to(current.tree).as_posix(): path.stat().st_size
            for path in current.tree.rglob("*")
            if path.is_file()
        }
        assert actual == expected
        assert current.files == len(expected)
        recorded = json.loads((current.path / "generation.json").read_text())
        assert recorded["files"] == len(expected)
        for tag, state in current.tags.items():
            assert store.per_version_tree(tag) is not None, f"version of {tag} missing"
            assert state.files == (2000 if tag != "1.0.0" else 0)
        return current.number


def test_kill_9_at_random_instants(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store:  # a first generation (no files), so that current always exists
        store.add_version("1.0.0", digest_of("1.0.0"), lambda tree: None)
        store.publish({"1.0.0": digest_of("1.0.0")})
    chance = random.Random(4)
    seen: set[int] = set()
    for round_ in range(10):
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n", worker.stderr.read() if worker.stderr else b""
            if round_ % 2:  # every other round kills after a publish, so that generations advance on a slow machine
                assert worker.stdout.readline() == b"published\n", worker.stderr.read() if worker.stderr else b""
            time.sleep(chance.uniform(0.05, 1.5))
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else b""
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.communicate()
        seen.add(_check_consistent(data))
    assert len(seen) >= 3, f"the worker published too rarely: generations {sorted(seen)}"
