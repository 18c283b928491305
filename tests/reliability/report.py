"""Render the rows the reliability suite wrote (JSON lines) as the table of ``docs/reliability.md``.

``python -m tests.reliability.report RESULTS.jsonl docs/reliability.md [--seconds S] [--exit-code N] [--merge]``
replaces what lies between the two markers (the rest of the file is kept; a missing file is created with a short
introduction).  The rows are also kept as JSON in a comment there, so ``--merge`` (a partial re-run, e.g.
``scripts/reliability -k crash``) replaces only the rows of the cases it ran.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

BEGIN = "<!-- reliability:begin (written by scripts/reliability) -->"
END = "<!-- reliability:end -->"
ROWS = "<!-- reliability:rows "
INTRO = """# Reliability and security

What specman promises under faults, load and hostile input, measured by the suite in `tests/reliability/` against
real processes on 127.0.0.1 (`specman serve`, `specman console`, `docker-registry`, a fault-injecting proxy, `wrk`).
A short version of every case runs with the default tests; `scripts/reliability` runs the long trials and rewrites
the table below. A trial *holds* when every check of the case passed in it.

"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _figures(figures: dict[str, object]) -> str:
    return "; ".join(f"{key} {value}" for key, value in figures.items())


def _order(row: dict[str, object]) -> tuple[int, str]:
    """Cases in their number's order ("5a. ..." after "4. ...", "10. ..." after "9. ...")."""
    case = str(row["case"])
    digits = re.match(r"\d+", case)
    return (int(digits.group()) if digits else 999, case)


def stored_rows(doc: Path) -> list[dict[str, object]]:
    """The rows kept in ``doc`` by the last run (empty when there are none)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if ROWS not in text:
        return []
    rows: list[dict[str, object]] = json.loads(text.split(ROWS, 1)[1].split(" -->", 1)[0])
    return rows


def merge(old: list[dict[str, object]], new: list[dict[str, object]]) -> list[dict[str, object]]:
    """``old`` with every row of a case in ``new`` replaced (by case and scale)."""
    ran = {(r["case"], r["scale"]) for r in new}
    return [r for r in old if (r["case"], r["scale"]) not in ran] + new


def render(
    rows: list[dict[str, object]], seconds: float | None, exit_code: int | None, partial: int | None = None
) -> str:
    rows = sorted(rows, key=_order)
    lines = [BEGIN, ""]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    took = f", {seconds / 60:.1f} min" if seconds is not None else ""
    outcome = "" if exit_code is None else (", all passed" if exit_code == 0 else f", pytest exit code {exit_code}")
    cores = len(__import__("os").sched_getaffinity(0))
    scope = f" (partial: {partial} rows re-run, the others from earlier runs)" if partial is not None else ""
    lines.append(f"Last run: {when}{scope}, {platform.system()} {platform.machine()}, {cores} cores{took}{outcome}.")
    lines += ["", "| case | trials | held | failed | key figures |", "|---|---:|---:|---:|---|"]
    for row in rows:
        figures = dict(row.get("figures") or {})  # type: ignore[call-overload]
        failures = [str(f) for f in row.get("failures") or []]  # type: ignore[attr-defined]
        if failures:
            figures["first failures"] = " / ".join(f[:160] for f in failures)
        lines.append(
            f"| {_cell(str(row['case']))} | {row['trials']} | {row['held']} | {row['failed']} | "
            f"{_cell(_figures(figures))} |"
        )
    kept = [{k: v for k, v in r.items() if k != "test"} for r in rows]
    lines += ["", ROWS + json.dumps(kept, ensure_ascii=False).replace("-->", "--\\u003e") + " -->", END]
    return "\n".join(lines) + "\n"


def write(doc: Path, table: str) -> None:
    text = doc.read_text(encoding="utf-8") if doc.exists() else INTRO + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + table + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + table
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("doc", type=Path)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--exit-code", type=int)
    parser.add_argument("--merge", action="store_true", help="keep the stored rows of cases not in RESULTS")
    args = parser.parse_args()
    rows = []
    if args.results.exists():
        rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines() if line.strip()]
    partial = len(rows) if args.merge else None
    if args.merge:
        rows = merge(stored_rows(args.doc), rows)
    write(args.doc, render(rows, args.seconds, args.exit_code, partial))
    print(f"{len(rows)} result rows written to {args.doc}")


if __name__ == "__main__":
    main()
