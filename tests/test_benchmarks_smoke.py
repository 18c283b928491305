"""benchmarks/run.py end to end at a tiny scale: it runs, writes the Markdown report and cleans up after itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = [
    ("small-files", "pack + push dir", "specman"),
    ("small-files", "push tgz", "specman"),
    ("small-files", "push tgz", "curl"),
    ("small-files", "push tgz", "oras-py"),
    ("small-files", "pull + extract", "specman"),
    ("small-files", "pull + extract", "curl \\| tar"),
    ("small-files", "download tgz", "specman --no-extract"),
    ("small-files", "download tgz", "curl -o"),
    ("small-files", "download tgz", "oras-py"),
    ("large-files", "pack + push dir", "specman"),
    ("large-files", "push tgz", "curl"),
    ("large-files", "pull + extract", "specman"),
    ("large-files", "pull + extract", "curl \\| tar"),
]


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    work, output = tmp_path / "work", tmp_path / "b.md"
    argv = [sys.executable, "benchmarks/run.py", "--scale", "0.001", "--repeat", "1"]
    argv += ["--work-dir", str(work), "--output", str(output)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"

    doc = output.read_text()
    for heading in ("## Machine", "## Results", "## Goals", "## Notes"):
        assert heading in doc
    lines = doc.splitlines()
    for dataset, operation, tool in ROWS:
        prefix = f"| {dataset} | {operation} | {tool} | "
        row = next((ln for ln in lines if ln.startswith(prefix)), None)
        assert row is not None, f"no row {prefix!r} in\n{doc}"
        cells = [c.strip() for c in row.replace("\\|", "/").strip("|").split("|")]
        assert len(cells) == 8
        assert float(cells[3]) > 0  # median seconds
        assert float(cells[7]) > 0  # peak RSS MiB
    assert "pull+extract ≥ 1.0× curl" in doc
    assert "specman peak RSS ≤ 100 MiB" in doc
    assert "| small-files | pull + extract | specman |" in done.stdout  # the table went to stdout too

    # temporary data (registry storage, tgz, destinations) is gone; the generated datasets are kept
    assert sorted(p.name for p in work.iterdir()) == ["datasets"]
    assert (work / "datasets" / "small-files").is_dir()
    assert (work / "datasets" / "large-files.json").is_file()
