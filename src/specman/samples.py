"""Sample manifest trees: the bundled realistic tree, a fast synthetic generator and a tree digest.

- :func:`bundled_manifests` locates the small, realistic tree of Palette product manifests shipped with
  specman (``examples/manifests`` in the repository, ``specman/_examples/manifests`` in a wheel).
- :func:`generate_tree` writes large synthetic trees for benchmarks and tests: deterministic for a seed, fast
  (about a gigabyte per few seconds) and streaming, so a file of any size is written in bounded memory.
- :func:`tree_digest` maps every file of a tree to its SHA-256, to check that a pull reproduced a push
  exactly.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeStats", "bundled_manifests", "generate_tree", "tree_digest"]

_CHUNK = 1 << 20  # generation and hashing unit: 1 MiB
_POOL_RECORDS = 2048  # JSON records drawn from by compressible trees
_MODE_FILE = 0o644


@dataclass(frozen=True, slots=True)
class TreeStats:
    """What :func:`generate_tree` wrote: regular files, their total size in bytes, layout directories."""

    files: int
    bytes: int
    dirs: int


def bundled_manifests() -> Path:
    """Return the directory of the bundled sample manifest tree.

    Looks first where a wheel carries it (``specman/_examples/manifests``), then in the source checkout
    (``<repository>/examples/manifests`` for the ``src/`` layout).

    Raises:
        FileNotFoundError: neither location exists.
    """
    here = Path(__file__)
    packaged = here.parent / "_examples" / "manifests"
    if packaged.is_dir():
        return packaged
    checkout = here.resolve().parents[2] / "examples" / "manifests"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"bundled sample manifests not found: looked in {packaged} (installed package) and {checkout} (source checkout)"
    )


class _RandomBytes:
    """A deterministic stream of pseudo-random bytes for a seed, produced 1 MiB at a time.

    Block ``k`` is SHAKE-128 of (seed, k): as unpredictable to a compressor as ``os.urandom``, faster than
    ``random.Random.randbytes`` and identical on every platform and Python version.
    """

    def __init__(self, seed: int) -> None:
        self._key = b"specman.samples:" + str(seed).encode() + b":"
        self._counter = 0
        self._block = memoryview(b"")
        self._pos = 0

    def chunks(self, n: int) -> Iterator[memoryview]:
        """Yield the next ``n`` bytes of the stream as views of at most 1 MiB."""
        while n > 0:
            if self._pos == len(self._block):
                block_key = self._key + self._counter.to_bytes(8, "big")
                self._block = memoryview(hashlib.shake_128(block_key).digest(_CHUNK))
                self._counter += 1
                self._pos = 0
            k = min(n, len(self._block) - self._pos)
            yield self._block[self._pos : self._pos + k]
            self._pos += k
            n -= k


_NAMES = (
    "kubernetes",
    "cni-calico",
    "cni-cilium-oss",
    "csi-aws-ebs",
    "csi-vsphere-csi",
    "nginx",
    "prometheus-operator",
    "cert-manager",
    "spectro-proxy",
    "ubuntu-aws",
)
_LAYERS = ("os", "k8s", "cni", "csi", "addon")
_CLOUDS = ("aws", "azure", "gcp", "vsphere", "edge-native")


class _JsonText:
    """Compressible JSON-like text: runs of records from a pool of pseudo-random JSON objects."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        records: list[bytes] = []
        for i in range(_POOL_RECORDS):
            record = {
                "id": f"pack-{i:05d}",
                "name": rng.choice(_NAMES),
                "version": f"{rng.randint(0, 3)}.{rng.randint(0, 30)}.{rng.randint(0, 15)}",
                "layer": rng.choice(_LAYERS),
                "cloudTypes": rng.sample(_CLOUDS, rng.randint(1, 3)),
                "sizeBytes": rng.randint(1_000, 5_000_000),
                "uid": f"{rng.getrandbits(48):012x}",
                "default": rng.random() < 0.2,
            }
            records.append(json.dumps(record).encode() + b",\n")
        self._blob = b"".join(records)
        self._view = memoryview(self._blob)
        starts = [0]
        for r in records:
            starts.append(starts[-1] + len(r))
        self._bounds = starts  # record boundaries, including the end of the blob
        self._longest = max(len(r) for r in records)

    def chunks(self, name: str, n: int) -> Iterator[bytes | memoryview]:
        """Yield exactly ``n`` bytes: a JSON document named ``name`` (valid when ``n`` is at least ~64)."""
        header = b'{"file": ' + json.dumps(name).encode() + b', "items": [\n'
        footer = b'{"end": true}]}\n'
        if n < len(header) + len(footer):
            yield (header + footer)[:n]
            return
        yield header
        remaining = n - len(header) - len(footer)
        bounds = self._bounds
        while remaining > self._longest:
            start = bounds[self._rng.randrange(len(bounds) - 1)]
            limit = min(start + remaining, start + _CHUNK, len(self._blob))
            end = bounds[bisect.bisect_right(bounds, limit) - 1]
            yield self._view[start:end]
            remaining -= end - start
        if remaining:
            yield b" " * (remaining - 1) + b"\n"
        yield footer


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def generate_tree(
    dest: Path,
    *,
    files: int,
    file_size: int,
    seed: int = 0,
    fanout: int = 64,
    compressible: bool = False,
) -> TreeStats:
    """Write ``files`` files of exactly ``file_size`` bytes under ``dest``, deterministically for ``seed``.

    Files are spread ``fanout`` to a directory over two directory levels, ``fanout`` leaf directories per top
    directory: with the default fanout, file 42 is ``d000/d000/f00042.bin`` and file 5000 is
    ``d001/d014/f05000.bin``. Content is pseudo-random bytes (incompressible, ``.bin``) or, with
    ``compressible=True``, JSON text (``.json``, valid JSON when ``file_size`` is at least about 64 bytes).
    Data is produced and written 1 MiB at a time, so memory use does not depend on ``file_size``.

    ``dest`` is created if missing; existing files of the same names are overwritten. The same arguments
    always produce byte-identical trees (see :func:`tree_digest`).

    Returns:
        The number of files and bytes written and of directories in the layout (top and leaf levels).
    """
    if files < 0 or file_size < 0:
        raise ValueError("files and file_size must not be negative")
    if fanout < 1:
        raise ValueError("fanout must be at least 1")
    text = _JsonText(random.Random(seed)) if compressible else None
    data = _RandomBytes(seed)
    ext = ".json" if compressible else ".bin"
    leaves = -(-files // fanout)
    tops = -(-leaves // fanout)
    file_width = max(5, len(str(max(files - 1, 0))))
    dir_width = max(3, len(str(max(tops - 1, fanout - 1, 0))))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)

    dest.mkdir(parents=True, exist_ok=True)
    # All directories first: on ext4, creating them between the files makes file creation several times slower.
    leaf_dirs: list[str] = []
    for leaf in range(leaves):
        top, mid = divmod(leaf, fanout)
        top_dir = os.path.join(dest, f"d{top:0{dir_width}d}")
        if mid == 0:
            os.makedirs(top_dir, exist_ok=True)
        leaf_dirs.append(os.path.join(top_dir, f"d{mid:0{dir_width}d}"))
        os.makedirs(leaf_dirs[-1], exist_ok=True)
    for i in range(files):
        name = f"f{i:0{file_width}d}{ext}"
        fd = os.open(os.path.join(leaf_dirs[i // fanout], name), flags, _MODE_FILE)
        try:
            chunks = text.chunks(name, file_size) if text is not None else data.chunks(file_size)
            for chunk in chunks:
                _write_all(fd, chunk)
        finally:
            os.close(fd)
    return TreeStats(files=files, bytes=files * file_size, dirs=leaves + tops)


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """Map the relative POSIX path of every file under ``root`` to its SHA-256 (hex), sorted by path.

    Regular files are hashed 1 MiB at a time. Symbolic links are not followed: they map to ``"-> TARGET"``
    (the link's target text). Directories contribute only through their contents; other file types (sockets,
    FIFOs, devices) are skipped.
    """
    result: dict[str, str] = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                result[rel] = "-> " + os.readlink(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                walk(entry.path, rel + "/")
            elif stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                result[rel] = _sha256_file(entry.path)

    walk(os.fspath(root), "")
    return dict(sorted(result.items()))
