"""benchmarks/migrate.py ``--quick`` end to end (about 15 s: nginx, docker-registry, console, serve, tar, curl): the
manual pipeline and ``specman migrate`` both run to the end and the report has both rows; and the three sections of
docs/benchmarks.md stay apart."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from tests.fixtures.bench import run_quick

REPO = Path(__file__).resolve().parents[1]


def test_sections_are_kept_apart(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        report = importlib.import_module("report")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    doc = tmp_path / "b.md"
    report.write_outside_serve_section(doc, "# main\n")
    report.write_section(doc, "serve body", "serve")
    report.write_section(doc, "migrate body", "migrate")
    report.write_section(doc, "migrate body 2", "migrate")
    report.write_outside_serve_section(doc, "# main 2\n")
    text = doc.read_text()
    assert text.startswith("# main 2\n")
    assert "serve body" in text and "migrate body 2" in text and "migrate body\n" not in text
    assert text.count("<!-- migrate:begin -->") == 1 and text.count("<!-- serve:begin -->") == 1


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (scripts/test-all)")
def test_quick_run(tmp_path: Path) -> None:
    text = run_quick("migrate.py", tmp_path / "report.md", "--work-dir", str(tmp_path / "w"), timeout=240)
    assert "| manual: `tar -czf`" in text and "| `specman migrate` from the SCAR's URL" in text
    assert "<!-- migrate:begin -->" in text
    assert not list((tmp_path / "w").glob("run-*"))  # its temporary data is removed
