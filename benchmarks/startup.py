"""Start-up cost of the AWS provider: botocore is imported only when an AWS registry is used.

Runs each command ``--runs`` times (alternating, after one warm-up each) and prints a Markdown table of the median
and min-max wall time and peak RSS: the interpreter alone (the floor), ``skopeo --version`` (a reference CLI),
``specman --version`` and ``specman tags --oci-layout`` of this tree and of another specman tree (``--before``, e.g.
the main branch without the provider), and ``import botocore.session`` (what an eager import would add)::

    uv run --locked python benchmarks/startup.py --before /work/main/src
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parent.parent


def _measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MiB (ru_maxrss of a fresh wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        detail = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {detail}")
    return elapsed, usage.ru_maxrss / 1024


def _layout(tmp: Path) -> Path:
    tree = tmp / "tree"
    tree.mkdir()
    (tree / "index.json").write_text("{}")
    layout = tmp / "layout"
    subprocess.run(
        [sys.executable, "-m", "specman", "push", str(tree), f"{layout}:1.0.0", "--oci-layout"],
        check=True,
        capture_output=True,
    )
    return layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", type=Path, help="the src directory of another specman tree to compare")
    parser.add_argument("--output", type=Path, help="write the table as the startup block of this file too")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPECMAN_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        layout = _layout(Path(tmp))
        py = sys.executable
        cases: list[tuple[str, list[str], dict[str, str]]] = [("python -c pass (floor)", [py, "-c", "pass"], env)]
        if shutil.which("skopeo"):
            cases.append(("skopeo --version (reference CLI)", ["skopeo", "--version"], env))
        trees = [("this branch", env)]
        if args.before is not None:
            trees.insert(0, ("before", {**env, "PYTHONPATH": str(args.before.resolve())}))
        for label, tree_env in trees:
            cases.append((f"specman --version ({label})", [py, "-m", "specman", "--version"], tree_env))
            tags = [py, "-m", "specman", "tags", str(layout), "--oci-layout"]
            cases.append((f"specman tags --oci-layout ({label})", tags, tree_env))
        cases.append(("python -c 'import botocore.session'", [py, "-c", "import botocore.session"], env))
        for _, command, case_env in cases:
            _measure(command, case_env)  # warm-up: page cache, .pyc
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
        for _ in range(args.runs):
            for name, command, case_env in cases:
                results[name].append(_measure(command, case_env))
    lines = [
        f"{args.runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        "| command | median s | min–max s | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        times = [t for t, _ in samples]
        rss = max(r for _, r in samples)
        lines.append(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f}–{max(times):.3f} | {rss:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.output is not None:
        write_section(args.output, "## Start-up: botocore only for AWS registries\n\n" + table, "startup")


if __name__ == "__main__":
    main()
