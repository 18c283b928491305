"""The bundled sample manifest tree and the synthetic tree tools of specman.samples."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tracemalloc
import zlib
from pathlib import Path

import pytest

from specman.samples import TreeStats, bundled_manifests, generate_tree, tree_digest

CLOUDS = ("aws", "azure", "gcp", "vsphere")
INSTANCE_FIELDS = {
    "type": str,
    "family": str,
    "vcpu": int,
    "memoryGiB": int,
    "pricePerHour": float,
    "architecture": str,
}
STORAGE_FIELDS = {
    "name": str,
    "kind": str,
    "iopsMax": int,
    "throughputMBps": int,
    "pricePerGiBMonth": float,
    "default": bool,
}


@pytest.fixture(scope="module")
def bundled() -> Path:
    return bundled_manifests()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _load(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the bundled tree


def test_bundled_tree_is_the_repository_examples(bundled: Path) -> None:
    assert bundled.is_dir()
    repo_examples = Path(__file__).resolve().parents[1] / "examples" / "manifests"
    if repo_examples.is_dir():
        assert bundled.resolve() == repo_examples


def test_bundled_tree_size_and_depth(bundled: Path) -> None:
    files = _files(bundled)
    assert 90 <= len(files) <= 120
    assert sum(p.stat().st_size for p in files) < 400 * 1024
    depths = {len(p.relative_to(bundled).parts) for p in files}
    assert max(depths) >= 4
    assert not [p for p in bundled.rglob("*") if p.is_symlink()]


def test_bundled_json_and_yaml_are_valid(bundled: Path) -> None:
    counts = {".json": 0, ".yaml": 0}
    for path in _files(bundled):
        if path.suffix == ".json":
            _load(path)
            counts[".json"] += 1
        elif path.suffix in (".yaml", ".yml"):
            text = path.read_text(encoding="utf-8")
            assert text.strip(), path
            assert "\t" not in text, f"tab in YAML {path}"
            counts[".yaml"] += 1
        else:
            path.read_text(encoding="utf-8")  # every file is UTF-8 text
    assert counts[".json"] >= 20
    assert counts[".yaml"] >= 20


def test_bundled_tree_has_awkward_names_and_an_executable(bundled: Path) -> None:
    assert (bundled / "notes" / "überblick.md").is_file()
    assert (bundled / "notes" / "upgrade checklist.txt").is_file()
    script = bundled / "scripts" / "verify-manifests.sh"
    assert script.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    others = [p for p in _files(bundled) if p != script]
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o111 == 0 for p in others)


def test_bundled_tree_has_only_example_hosts(bundled: Path) -> None:
    for path in _files(bundled):
        for url in re.findall(r"https?://[^\s\"'`)]+", path.read_text(encoding="utf-8")):
            assert re.match(r"https?://([a-z0-9-]+\.)*(example\.com|cluster\.local)([:/]|$)", url), (path, url)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_cloud_instance_types(bundled: Path, cloud: str) -> None:
    items = _load(bundled / "cloud-types" / cloud / "instance-types.json")
    assert isinstance(items, list)
    assert len(items) >= 5
    names = set()
    for item in items:
        for field, kind in INSTANCE_FIELDS.items():
            assert isinstance(item[field], kind), (cloud, item, field)
        assert item["vcpu"] > 0
        assert item["memoryGiB"] > 0
        assert item["pricePerHour"] > 0
        assert item["architecture"] in ("amd64", "arm64")
        assert item["gpu"] is None or (item["gpu"]["count"] >= 1 and item["gpu"]["model"])
        names.add(item["type"])
    assert len(names) == len(items), "duplicate instance type"
    assert any(item["gpu"] for item in items)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_cloud_storage_types(bundled: Path, cloud: str) -> None:
    items = _load(bundled / "cloud-types" / cloud / "storage-types.json")
    assert isinstance(items, list)
    assert len(items) >= 3
    for item in items:
        for field, kind in STORAGE_FIELDS.items():
            assert isinstance(item[field], kind), (cloud, item, field)
        assert item["iopsMax"] > 0
        assert item["throughputMBps"] > 0
    assert sum(item["default"] for item in items) == 1
    assert len({item["name"] for item in items}) == len(items)


def test_cloud_types_index(bundled: Path) -> None:
    index = _load(bundled / "cloud-types" / "index.json")
    assert isinstance(index, dict)
    assert [c["cloud"] for c in index["clouds"]] == list(CLOUDS)
    for entry in index["clouds"]:
        for key, count in (("instanceTypes", "instanceTypeCount"), ("storageTypes", "storageTypeCount")):
            listed = _load(bundled / "cloud-types" / entry[key])
            assert isinstance(listed, list)
            assert len(listed) == entry[count]


def test_index_lists_every_file(bundled: Path) -> None:
    index = _load(bundled / "index.json")
    assert isinstance(index, dict)
    listed = {e["path"]: e["size"] for e in index["files"]}
    actual = {p.relative_to(bundled).as_posix(): p.stat().st_size for p in _files(bundled)}
    del actual["index.json"]  # the listing does not list itself
    assert listed == actual


def test_checksums_match(bundled: Path) -> None:
    lines = (bundled / "scripts" / "checksums.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.split("  ", 1) for line in lines if line and not line.startswith("#")]
    assert len(entries) == 9
    for digest, rel in entries:
        assert hashlib.sha256((bundled / rel).read_bytes()).hexdigest() == digest, rel


def test_bundled_manifests_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import specman.samples as samples

    fake = tmp_path / "a" / "b" / "c" / "samples.py"
    monkeypatch.setattr(samples, "__file__", str(fake))
    with pytest.raises(FileNotFoundError, match="bundled sample manifests not found"):
        samples.bundled_manifests()
    packaged = fake.parent / "_examples" / "manifests"
    packaged.mkdir(parents=True)
    assert samples.bundled_manifests() == packaged


# --------------------------------------------------------------------------- generate_tree


def _sizes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in _files(root)}


def test_generate_tree_layout_and_sizes(tmp_path: Path) -> None:
    stats = generate_tree(tmp_path / "t", files=150, file_size=1000, seed=7, fanout=8)
    assert stats == TreeStats(files=150, bytes=150_000, dirs=19 + 3)  # 19 leaf dirs under 3 top dirs
    sizes = _sizes(tmp_path / "t")
    assert len(sizes) == 150
    assert set(sizes.values()) == {1000}
    assert "d000/d000/f00000.bin" in sizes
    assert "d000/d001/f00008.bin" in sizes
    assert "d002/d002/f00149.bin" in sizes
    assert all(len(Path(p).parts) == 3 for p in sizes)
    dirs = [p for p in (tmp_path / "t").rglob("*") if p.is_dir()]
    assert len(dirs) == stats.dirs


def test_generate_tree_default_layout(tmp_path: Path) -> None:
    generate_tree(tmp_path, files=5001, file_size=0)
    assert (tmp_path / "d000" / "d000" / "f00042.bin").stat().st_size == 0
    assert (tmp_path / "d001" / "d014" / "f05000.bin").is_file()


def test_generate_tree_is_deterministic(tmp_path: Path) -> None:
    a = generate_tree(tmp_path / "a", files=40, file_size=3000, seed=1, fanout=4)
    b = generate_tree(tmp_path / "b", files=40, file_size=3000, seed=1, fanout=4)
    c = generate_tree(tmp_path / "c", files=40, file_size=3000, seed=2, fanout=4)
    assert a == b == c
    da, db, dc = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b"), tree_digest(tmp_path / "c")
    assert da == db
    assert da.keys() == dc.keys()
    assert not set(da.values()) & set(dc.values())
    assert len(set(da.values())) == 40, "files must differ from each other"


def test_generate_tree_random_content_is_incompressible(tmp_path: Path) -> None:
    generate_tree(tmp_path, files=2, file_size=(1 << 20) + 12345, seed=3)
    for path in _files(tmp_path):
        data = path.read_bytes()
        assert len(data) == (1 << 20) + 12345
        assert len(zlib.compress(data, 6)) > 0.99 * len(data)


def test_generate_tree_compressible(tmp_path: Path) -> None:
    stats = generate_tree(tmp_path / "a", files=30, file_size=20_000, seed=5, fanout=8, compressible=True)
    again = generate_tree(tmp_path / "b", files=30, file_size=20_000, seed=5, fanout=8, compressible=True)
    assert stats == again == TreeStats(files=30, bytes=600_000, dirs=5)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    paths = _files(tmp_path / "a")
    assert all(p.suffix == ".json" for p in paths)
    for path in paths:
        data = path.read_bytes()
        assert len(data) == 20_000
        doc = json.loads(data)
        assert doc["file"] == path.name
        assert doc["items"][-1] == {"end": True}
        assert len(zlib.compress(data, 6)) < 0.4 * len(data)


@pytest.mark.parametrize("size", [0, 1, 40, 70, 301, (1 << 20) + 1])
def test_generate_tree_compressible_exact_sizes(tmp_path: Path, size: int) -> None:
    generate_tree(tmp_path, files=3, file_size=size, compressible=True)
    sizes = _sizes(tmp_path)
    assert set(sizes.values()) == {size}
    if size >= 64:
        for path in _files(tmp_path):
            json.loads(path.read_bytes())


@pytest.mark.parametrize("compressible", [False, True])
def test_generate_tree_bounded_memory(tmp_path: Path, compressible: bool) -> None:
    tracemalloc.start()
    try:
        generate_tree(tmp_path, files=1, file_size=24 << 20, compressible=compressible)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "d000" / "d000").is_dir()
    assert _sizes(tmp_path) == {f"d000/d000/f00000.{'json' if compressible else 'bin'}": 24 << 20}
    assert peak < 6 << 20


def test_generate_tree_overwrites_and_rejects_bad_arguments(tmp_path: Path) -> None:
    generate_tree(tmp_path, files=3, file_size=100)
    generate_tree(tmp_path, files=3, file_size=10)
    assert set(_sizes(tmp_path).values()) == {10}
    assert generate_tree(tmp_path / "empty", files=0, file_size=10) == TreeStats(0, 0, 0)
    with pytest.raises(ValueError, match="negative"):
        generate_tree(tmp_path, files=-1, file_size=1)
    with pytest.raises(ValueError, match="negative"):
        generate_tree(tmp_path, files=1, file_size=-1)
    with pytest.raises(ValueError, match="fanout"):
        generate_tree(tmp_path, files=1, file_size=1, fanout=0)


# --------------------------------------------------------------------------- tree_digest


def test_tree_digest_with_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "a" / "b" / "x.json").write_bytes(b'{"x": 1}\n')
    (root / "top.txt").write_bytes(b"")
    (root / "notes").mkdir()
    (root / "notes" / "überblick.md").write_text("# Überblick\n", encoding="utf-8")
    (root / "with space.txt").write_bytes(b"s" * (3 << 20))
    os.symlink("a/b/x.json", root / "link.json")
    os.symlink("a", root / "dirlink")  # not followed
    os.symlink("../outside", root / "a" / "dangling")
    os.mkfifo(root / "fifo")  # skipped

    digest = tree_digest(root)
    assert list(digest) == sorted(digest)
    assert digest == {
        "a/b/x.json": hashlib.sha256(b'{"x": 1}\n').hexdigest(),
        "a/dangling": "-> ../outside",
        "dirlink": "-> a",
        "link.json": "-> a/b/x.json",
        "notes/überblick.md": hashlib.sha256("# Überblick\n".encode()).hexdigest(),
        "top.txt": hashlib.sha256(b"").hexdigest(),
        "with space.txt": hashlib.sha256(b"s" * (3 << 20)).hexdigest(),
    }
    assert tree_digest(root / "empty-dir") == {}


def test_tree_digest_of_bundled_tree(bundled: Path) -> None:
    digest = tree_digest(bundled)
    assert len(digest) == len(_files(bundled))
    assert (
        digest["notes/upgrade checklist.txt"]
        == hashlib.sha256((bundled / "notes" / "upgrade checklist.txt").read_bytes()).hexdigest()
    )
