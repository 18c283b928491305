"""benchmarks/storage.py ``--quick`` end to end (3 versions of 100 files: docker-registry, the pooled and the previous
store, ``tar -xzf``, ``specman serve`` + wrk): every row is there and the section survives ``run.py``'s rewrite."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from tests.fixtures.bench import run_quick

REPO = Path(__file__).resolve().parents[1]


def test_storage_section_is_kept(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        report = importlib.import_module("report")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    doc = tmp_path / "b.md"
    report.write_section(doc, "storage body", "storage")
    report.write_outside_serve_section(doc, "# main\n")
    assert doc.read_text().count("storage body") == 1


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/test-all)")
def test_quick_run(tmp_path: Path) -> None:
    text = run_quick("storage.py", tmp_path / "report.md", "--work-dir", str(tmp_path / "w"), timeout=600)
    assert "<!-- storage:begin -->" in text and "| disk use / unique bytes |" in text
    assert "ETags identical" in text
    assert "| last version added to the others, median: reconcile |" in text
    assert not (tmp_path / "w" / "storage").exists()  # its temporary data is removed
