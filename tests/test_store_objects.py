"""The content-addressed object pool of specman.store, on real files and real archives: one inode per content
across versions, no data written for known content, damaged objects replaced, gc, conversion of the layout before
the pool (also under ``kill -9``), a file system without hard links, a full disk (a real size-limited tmpfs)."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.archive import digests, extract_into
from specman.errors import StoreError
from specman.store import Store
from specman.store._state import read_versions
from tests.conftest import ServeFactory
from tests.fixtures.registry import Registry
from tests.fixtures.serve import poll
from tests.test_serve_process import _push, _source

Files = dict[str, bytes]
BIG = 200 << 10  # above digests.MIN_SIZE: streamed or recorded, checked by its record


def tgz(files: Files) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def digest_of(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


def add(store: Store, tag: str, files: Files) -> Path:
    data = tgz(files)
    version = store.add_version(
        tag, digest_of(tag), lambda tree: extract_into(io.BytesIO(data), tree, objects=store.objects)
    )
    return version.tree


def objects(store: Store) -> dict[str, os.stat_result]:
    return {p.name: p.lstat() for p in (store.objects_dir / "sha256").iterdir()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_files(count: int = 50) -> Files:
    files = {f"d{i % 5}/f{i}.json": f"file {i}\n".encode() * (1 + i) for i in range(count)}
    files["big/blob.bin"] = random.Random(1).randbytes(3 << 20)  # streamed (over 1 MiB)
    files["big/mid.bin"] = random.Random(2).randbytes(BIG)  # buffered, recorded
    files["run.sh"] = b"#!/bin/sh\necho hi\n"
    return files


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as opened:
        yield opened


def test_identical_files_are_one_inode_named_by_their_digest(store: Store) -> None:
    files = base_files()
    one = add(store, "1.0.0", files)
    changed = {**files, "d0/f0.json": b"changed\n", "big/blob.bin": files["big/blob.bin"][:-1] + b"!"}
    two = add(store, "2.0.0", changed)
    for name, data in changed.items():
        mode = "755" if name.endswith(".sh") else "644"
        obj = store.objects_dir / "sha256" / f"{sha(data)}-{mode}"
        assert (two / name).read_bytes() == data
        assert os.stat(two / name).st_ino == obj.stat().st_ino, name
        if files[name] == data:
            assert os.stat(one / name).st_ino == os.stat(two / name).st_ino, f"{name} stored twice"
    assert oct(os.stat(two / "run.sh").st_mode & 0o777) == "0o755"
    # the records the server's ETags use stay valid on the shared inode
    st = os.stat(two / "big/blob.bin")
    assert digests.recorded(two / "big/blob.bin", st) == sha(changed["big/blob.bin"])
    assert digests.recorded(one / "big/mid.bin", os.stat(one / "big/mid.bin")) == sha(files["big/mid.bin"])
    generation = store.publish({"1.0.0": digest_of("1.0.0"), "2.0.0": digest_of("2.0.0")})
    assert os.stat(generation.tree / "d1/f1.json").st_ino == os.stat(one / "d1/f1.json").st_ino
    assert not generation.conflicts or all(c.path in ("d0/f0.json", "big/blob.bin") for c in generation.conflicts)
    assert len(objects(store)) == len(files) + 2


def test_known_content_writes_no_new_inode_and_gc_removes_only_garbage(store: Store) -> None:
    files = base_files()
    add(store, "1.0.0", files)
    before = {name: st.st_ino for name, st in objects(store).items()}
    tree = add(store, "1.0.1", files)  # same content, another tag
    assert {name: st.st_ino for name, st in objects(store).items()} == before
    assert all(os.stat(tree / name).st_nlink >= 3 for name in files)
    store.publish({"1.0.1": digest_of("1.0.1")})
    store.gc(keep=1)
    assert {name: st.st_ino for name, st in objects(store).items()} == before  # all still used by 1.0.1
    add(store, "2.0.0", {"only/new.txt": b"new\n"})
    store.publish({"2.0.0": digest_of("2.0.0")})
    result = store.gc(keep=1)
    assert result.versions == ("1.0.1@" + digest_of("1.0.1").replace(":", "-"),)
    assert result.objects == len(files)
    assert list(objects(store)) == [f"{sha(b'new' + bytes([10]))}-644"]
    usage = store.usage()
    assert usage is not None
    assert (usage.objects, usage.unique_bytes, usage.logical_bytes, usage.versions) == (1, 4, 4, 1)


def test_usage_reports_bytes_inodes_and_sharing(store: Store) -> None:
    files = base_files()
    for number in range(4):
        add(store, f"1.{number}.0", {**files, "d0/f0.json": f"v{number}".encode()})
    store.publish({f"1.{n}.0": digest_of(f"1.{n}.0") for n in range(4)})
    store.gc(keep=1)
    usage = store.usage()
    assert usage is not None
    unique = sum(len(d) for n, d in files.items() if n != "d0/f0.json") + 4 * 2
    assert usage.unique_bytes == unique
    assert usage.objects == len(files) - 1 + 4
    assert usage.logical_bytes == 4 * (unique - 6)
    assert usage.sharing_ratio is not None and 3.9 < usage.sharing_ratio <= 4.0
    assert usage.objects < usage.inodes < usage.objects + 100  # directories and records, no inode per link
    status = store.status()["storage"]
    assert status["sharing_ratio"] == usage.sharing_ratio and status["volume"]["inodes_free"] > 0


def test_a_reverted_path_never_goes_back_in_time(store: Store) -> None:
    """Last-Modified is the mtime: content going back to an older object must not look older than before."""
    files = base_files(5)
    for number, tag in enumerate(("1.0.0", "2.0.0", "3.0.0")):
        change = {name: data + (b"!" if number == 1 else b"") for name, data in files.items()}
        tree = add(store, tag, change)
        if number == 1:
            seen = {name: os.stat(tree / name).st_mtime_ns for name in files}
        time.sleep(0.02)
    for name, data in files.items():
        st = os.stat(tree / name)
        assert st.st_mtime_ns > seen[name], name
        if len(data) >= digests.MIN_SIZE:  # the record moved along: the server still gets the digest for free
            assert digests.recorded(tree / name, st) == sha(data)


@pytest.mark.parametrize("name", ["d1/f1.json", "big/mid.bin", "big/blob.bin"])
@pytest.mark.parametrize("damage", ["truncate", "same size"])
def test_damaged_object_is_replaced_not_reused(
    store: Store, caplog: pytest.LogCaptureFixture, name: str, damage: str
) -> None:
    files = base_files()
    one = add(store, "1.0.0", files)
    obj = store.objects_dir / "sha256" / f"{sha(files[name])}-644"
    with open(obj, "r+b") as out:  # behind specman's back: every link of the inode shows it
        if damage == "truncate":
            out.truncate(len(files[name]) // 2)
        else:
            out.write(b"X")
    with caplog.at_level(logging.WARNING, logger="specman.store"):
        two = add(store, "2.0.0", files)
    assert (two / name).read_bytes() == files[name]
    assert os.stat(two / name).st_ino != os.stat(one / name).st_ino
    assert obj.read_bytes() == files[name] and obj.stat().st_ino == os.stat(two / name).st_ino
    assert "is damaged" in caplog.text and "replaced, not reused" in caplog.text


def _legacy(store_dir: Path, versions: dict[str, Files]) -> dict[str, Files]:
    """A data dir as specman wrote it before the object pool: a private inode per file per version, records
    without ``pooled``, a generation of hard links to the version files."""
    with Store(store_dir) as store:
        for tag, files in versions.items():
            add(store, tag, files)
        store.publish({tag: digest_of(tag) for tag in versions})
    for record in [*store_dir.glob("versions/*/version.json"), *store_dir.glob("generations/*/generation.json")]:
        text = record.read_text().replace('"pooled": true', '"pooled": false')
        record.write_text(text)
    for path in store_dir.glob("versions/*/tree/**/*"):
        if path.is_file():
            data = path.read_bytes()
            twin = path.with_name(path.name + ".tmp")
            twin.write_bytes(data)
            os.chmod(twin, path.stat().st_mode)
            os.replace(twin, path)  # a private inode, as each old extraction made
    for gen_tree in store_dir.glob("generations/*/tree"):
        for path in [p for p in gen_tree.rglob("*") if p.is_file()]:  # the merged view: links to version inodes
            for tag in reversed(list(versions)):
                source = next(store_dir.glob(f"versions/{tag}@*")) / "tree" / path.relative_to(gen_tree)
                if source.is_file() and source.read_bytes() == path.read_bytes():
                    os.unlink(path)
                    os.link(source, path)
                    break
    for obj in (store_dir / "objects" / "sha256").iterdir():
        obj.unlink()
    (store_dir / "objects" / "usage.json").unlink(missing_ok=True)
    return dict(versions)


def _snapshot(tree: Path) -> Files:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_legacy_data_dir_is_converted_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = base_files(30)
    versions = {"1.0.0": files, "2.0.0": {**files, "d0/f0.json": b"two\n"}}
    data = tmp_path / "data"
    _legacy(data, versions)
    trees = sorted(data.glob("versions/*/tree"))
    assert os.stat(trees[0] / "d1/f1.json").st_ino != os.stat(trees[1] / "d1/f1.json").st_ino
    before = {tree: _snapshot(tree) for tree in [*trees, data / "current" / "tree"]}
    with caplog.at_level(logging.WARNING, logger="specman.store"), Store(data) as store:
        assert "converting 3 versions and generations to the object pool" in caplog.text
        assert {tree: _snapshot(tree) for tree in before} == before
        inodes = {os.stat(t / "d1/f1.json").st_ino for t in [*trees, data / "current" / "tree"]}
        assert len(inodes) == 1
        assert all(v.pooled for v in read_versions(store.versions_dir)) and store.current().pooled  # type: ignore[union-attr]
        store.gc()
        usage = store.usage()
        assert usage is not None and usage.objects == len(files) + 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="specman.store"), Store(data):
        assert "converting" not in caplog.text


_CONVERTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from specman.store import Store
    print("ready", flush=True)
    with Store(Path(sys.argv[1])):
        pass
    print("done", flush=True)
    """
)


def test_conversion_survives_kill_9(tmp_path: Path) -> None:
    files = {f"d{i % 9}/f{i}.txt": f"content {i % 700}\n".encode() * 20 for i in range(3000)}
    versions = {"1.0.0": files, "1.1.0": {**files, "new.txt": b"new"}, "1.2.0": files}
    template = tmp_path / "template"
    _legacy(template, versions)
    expected = {tree.relative_to(template): _snapshot(tree) for tree in template.glob("*/*/tree")}
    chance = random.Random(7)
    data = tmp_path / "data"
    subprocess.run(["cp", "-a", str(template), str(data)], check=True)
    for _ in range(6):
        worker = subprocess.Popen([sys.executable, "-c", _CONVERTER, str(data)], stdout=subprocess.PIPE)
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        time.sleep(chance.uniform(0.0, 0.6))
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
        for rel, snapshot in expected.items():  # every file of every tree there, whole, at every instant
            assert _snapshot(data / rel) == snapshot
    with Store(data) as store:
        assert all(v.pooled for v in read_versions(store.versions_dir))
        store.gc()
        assert {tree.relative_to(data): _snapshot(tree) for tree in data.glob("*/*/tree")} == expected
        assert all(st.st_nlink > 1 for st in objects(store).values())
        inodes = {os.stat(data / rel / "d1/f1.txt").st_ino for rel in expected}
        assert len(inodes) == 1


def test_without_hard_links_versions_are_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)  # a fault this machine's file systems cannot produce
    files = base_files(10)
    with caplog.at_level(logging.WARNING, logger="specman.store"), Store(tmp_path / "data") as store:
        assert "has no hard links: every version is stored as a full copy" in caplog.text
        assert store.objects is None
        add(store, "1.0.0", files)
        generation = store.publish({"1.0.0": digest_of("1.0.0")})
        assert _snapshot(generation.tree) == files
        store.gc()
        usage = store.usage()
        assert usage is not None and not usage.pooled and usage.logical_bytes == usage.unique_bytes
        assert store.status()["storage"]["pooled"] is False


def _mount_tmpfs(point: Path, options: str) -> None:
    point.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")


def test_disk_full_while_adding_objects_keeps_the_old_view(tmp_path: Path) -> None:
    point = tmp_path / "small"
    _mount_tmpfs(point, "size=8m")
    try:
        files = base_files()
        with Store(point / "data") as store:
            add(store, "1.0.0", files)
            store.publish({"1.0.0": digest_of("1.0.0")})
            store.gc()
            rng = random.Random(3)
            huge = {**files, **{f"new/{i}.bin": rng.randbytes(600 << 10) for i in range(16)}}
            with pytest.raises(StoreError, match=r"^disk full while adding version 2\.0\.0"):
                add(store, "2.0.0", huge)
            assert not store.has_version("2.0.0", digest_of("2.0.0"))
            assert _snapshot(store.current().tree) == files  # type: ignore[union-attr]
            assert list(store.staging_dir.iterdir()) == []
            store.gc()
            assert all(st.st_nlink > 1 for st in objects(store).values())  # what the failed version linked: gone
            assert len(objects(store)) == len(files)
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_serve_reports_storage_and_keeps_etags(
    plain_registry: Registry, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    name = f"objects/{uuid.uuid4().hex[:10]}"
    shared = {f"d/f{i}.json": f"shared {i}\n".encode() * 50 for i in range(20)}
    shared["big.bin"] = random.Random(5).randbytes(BIG)
    for tag, extra in (("1.0.0", b"one"), ("2.0.0", b"two")):
        _push(plain_registry, name, tag, {**shared, "own.txt": extra}, tmp_path)
    data = tmp_path / "data"
    server = serve_factory(_source(plain_registry, name), data, workers=2, extra_args=["--interval", "1h"])
    with server.client() as client:
        assert poll(lambda: set(client.get("/_specman/status").json()["tags"]) == {"1.0.0", "2.0.0"})
        assert poll(lambda: client.get("/_specman/status").json()["storage"].get("objects") == len(shared) + 2)
        storage = client.get("/_specman/status").json()["storage"]
        unique = sum(map(len, shared.values())) + 6
        assert (storage["unique_bytes"], storage["logical_bytes"]) == (unique, 2 * unique - 6)
        assert 1.9 < storage["sharing_ratio"] <= 2.0 and storage["inodes"] > storage["objects"]
        for path, body in shared.items():  # the ETag is the content's digest, in the view and in each version
            etags = {client.head(url).headers["etag"] for url in (f"/{path}", f"/_specman/versions/1.0.0/{path}")}
            assert etags == {f'"{sha(body)[:32]}"'}
        page = client.get("/_specman/").text
        assert "Sharing ratio" in page and 'id="unique-bytes"' in page
        metrics = client.get("/metrics").text
        assert re.search(rf"^specman_store_unique_bytes {float(unique)!r}$", metrics, re.M), metrics
        assert re.search(r"^specman_store_sharing_ratio (1\.9|2\.0)", metrics, re.M)
        assert re.search(rf"^specman_store_objects {float(len(shared) + 2)!r}$", metrics, re.M)
        assert re.search(r"^specman_store_inodes [1-9]", metrics, re.M)
    trees = sorted(data.glob("versions/*/tree"))
    assert os.stat(trees[0] / "big.bin").st_ino == os.stat(trees[1] / "big.bin").st_ino
