"""Render the rows the reliability suite wrote (JSON lines) as the table of ``docs/reliability.md``.

``python -m tests.reliability.report RESULTS.jsonl docs/reliability.md [--seconds S] [--exit-code N]`` replaces what
lies between the two markers (the rest of the file is kept; a missing file is created with a short introduction).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

BEGIN = "<!-- reliability:begin (written by scripts/reliability) -->"
END = "<!-- reliability:end -->"
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


def render(rows: list[dict[str, object]], seconds: float | None, exit_code: int | None) -> str:
    rows = sorted(rows, key=lambda r: (str(r["case"]).split(".")[0].zfill(3), str(r["case"])))
    lines = [BEGIN, ""]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    took = f", {seconds / 60:.1f} min" if seconds is not None else ""
    outcome = "" if exit_code is None else (", all passed" if exit_code == 0 else f", pytest exit code {exit_code}")
    cores = len(__import__("os").sched_getaffinity(0))
    lines.append(f"Last run: {when}, {platform.system()} {platform.machine()}, {cores} cores{took}{outcome}.")
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
    lines += ["", END]
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
    args = parser.parse_args()
    rows = []
    if args.results.exists():
        rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines() if line.strip()]
    write(args.doc, render(rows, args.seconds, args.exit_code))
    print(f"{len(rows)} result rows written to {args.doc}")


if __name__ == "__main__":
    main()
