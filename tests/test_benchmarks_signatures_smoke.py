"""benchmarks/signatures.py ``--quick`` end to end (docker-registry, a counting proxy, three repositories): the report
has every row and the request goals hold (timings are the benchmark's business, never asserted here)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.bench import run_quick


def test_quick_run(tmp_path: Path) -> None:
    text = run_quick("signatures.py", tmp_path / "report.md", timeout=300)
    assert "<!-- signatures:begin -->" in text
    assert "| no-op sync of 10 signed tags: ≤ 1 manifest request per tag | 1.00 per tag | met |" in text
    assert "verification of one new version alone | signed (.sig tag)" in text
