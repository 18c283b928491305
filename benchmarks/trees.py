"""The benchmark datasets: random-byte trees made with ``specman.samples.generate_tree`` and kept between runs."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from procs import MiB, log
from specman.samples import generate_tree, tree_digest

__all__ = ["Dataset", "datasets", "ensure_dataset", "sha256_file", "source_digest", "tree_hash"]

KiB = 1 << 10


@dataclass(frozen=True)
class Dataset:
    name: str
    files: int
    file_size: int
    seed: int

    @property
    def nbytes(self) -> int:
        return self.files * self.file_size

    def describe(self) -> str:
        size = f"{self.file_size // KiB:,} KiB" if self.file_size % KiB == 0 else f"{self.file_size:,} B"
        if self.file_size >= MiB and self.file_size % MiB == 0:
            size = f"{self.file_size // MiB:,} MiB"
        return f"`{self.name}`: {self.files:,} files x {size} of random bytes ({self.nbytes / MiB:,.1f} MiB)"


def datasets(scale: float) -> list[Dataset]:
    """(a) 65,536 x 16 KiB, (b) 4 x 256 MiB; ``scale`` shrinks the file count of (a) and the file size of (b)."""
    return [
        Dataset("small-files", max(1, round(65_536 * scale)), 16 * KiB, seed=1),
        Dataset("large-files", 4, max(1, round(256 * MiB * scale)), seed=2),
    ]


def tree_hash(root: Path) -> str:
    """One SHA-256 over the paths and contents of every file under ``root``."""
    return hashlib.sha256(json.dumps(tree_digest(root)).encode()).hexdigest()


def ensure_dataset(store: Path, ds: Dataset) -> tuple[Path, str]:
    """Generate ``ds`` under ``store`` unless a complete copy with the same parameters is there already."""
    tree, marker = store / ds.name, store / f"{ds.name}.json"
    wanted = {"files": ds.files, "file_size": ds.file_size, "seed": ds.seed}
    try:
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted and tree.is_dir():
            return tree, str(found["tree"])
    except (OSError, ValueError, KeyError):
        pass
    marker.unlink(missing_ok=True)
    shutil.rmtree(tree, ignore_errors=True)
    log(f"generating {ds.describe()} in {tree} ...")
    started = time.monotonic()
    generate_tree(tree, files=ds.files, file_size=ds.file_size, seed=ds.seed)
    digest = tree_hash(tree)
    marker.write_text(json.dumps({**wanted, "tree": digest}) + "\n")
    log(f"  done in {time.monotonic() - started:.1f} s")
    return tree, digest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def source_digest() -> tuple[Path, str]:
    """The directory of the specman package being measured and a SHA-256 over its ``.py`` files."""
    import specman

    root = Path(specman.__file__).resolve().parent
    files = {k: v for k, v in tree_digest(root).items() if k.endswith(".py")}
    return root, hashlib.sha256(json.dumps(files).encode()).hexdigest()
