"""benchmarks/serve.py: the report sections, and ``--quick`` end to end (about 40 s; wrk and nginx-light, which
``scripts/test-all`` installs). The end-to-end run is marked ``slow``: deselected by default, ``scripts/test-all``
runs it on its own after the rest (``pytest -m slow``). Without the tools it fails with the ``apt-get`` line.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CASES = (
    "4 KiB file, TLS,",
    "4 KiB file, plain HTTP,",
    "8 MiB file, TLS,",
    "8 MiB file, plain HTTP,",
    "no-op `sync --once`, 100 unchanged tags: reconcile",
    "no-op `sync --once`: manifest requests",
    "registry push → new file served",
    "peak RSS of `specman serve --workers 2` syncing `small-files`",
    "peak RSS of `specman serve --workers 2` syncing `large-files`",
)


def _report_module() -> ModuleType:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module("report")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_serve_and_run_sections_replace_only_their_own_part(tmp_path: Path) -> None:
    report = _report_module()
    doc = tmp_path / "benchmarks.md"
    report.write_serve_section(doc, "## Serving\n\nfirst")
    assert doc.read_text() == "<!-- serve:begin -->\n## Serving\n\nfirst\n<!-- serve:end -->\n"

    report.write_outside_serve_section(doc, "# specman benchmarks\n\npull/push\n")
    report.write_serve_section(doc, "## Serving\n\nsecond\n")
    report.write_outside_serve_section(doc, "# specman benchmarks\n\npull/push again\n")
    assert doc.read_text() == (
        "# specman benchmarks\n\npull/push again\n\n<!-- serve:begin -->\n## Serving\n\nsecond\n<!-- serve:end -->\n"
    )


@pytest.mark.slow
def test_serve_benchmark_quick(tmp_path: Path) -> None:
    work, output = tmp_path / "work", tmp_path / "b.md"
    output.write_text("# specman benchmarks\n\nthe pull/push report\n")
    argv = [sys.executable, "benchmarks/serve.py", "--quick", "--work-dir", str(work), "--output", str(output)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    if done.returncode == 2:
        pytest.fail(done.stdout.strip(), pytrace=False)  # missing tools: the apt-get install line
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"

    doc = output.read_text()
    assert doc.startswith("# specman benchmarks\n\nthe pull/push report\n")  # run.py's part is kept
    assert doc.count("<!-- serve:begin -->") == 1
    assert doc.rstrip().endswith("<!-- serve:end -->")
    assert "FAILED" not in doc
    rows = [ln for ln in doc.splitlines() if ln.startswith("| ") and not ln.startswith("| case")]
    for case in CASES:
        row = next((ln for ln in rows if ln.startswith(f"| {case}")), None)
        assert row is not None, f"no row {case!r} in\n{doc}"
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 7, row
        assert cells[1][0].isdigit(), row  # a measured figure, not "FAILED" / "not measured"
        if "wrk" in case or case.startswith(("4 KiB", "8 MiB")):
            assert cells[6] == "0 / 0", row  # no wrk errors
    assert "4 KiB file, TLS," in done.stdout  # the table went to stdout too

    # everything started is stopped and the temporary data is gone; only the generated datasets are kept
    assert sorted(p.name for p in work.iterdir()) == ["datasets-scale-0.001"]
    assert _processes_mentioning(str(work)) == []
