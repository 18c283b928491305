"""benchmarks/signatures.py ``--quick`` end to end (docker-registry, a counting proxy, three repositories): the report
has every row and the request goals hold (timings are the benchmark's business, never asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    proc = subprocess.run(
        [sys.executable, "signatures.py", "--quick", "--output", str(out)],
        cwd=REPO / "benchmarks",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "<!-- signatures:begin -->" in text
    assert "| no-op sync of 10 signed tags: ≤ 1 manifest request per tag | 1.00 per tag | met |" in text
    assert "verification of one new version alone | signed (.sig tag)" in text
