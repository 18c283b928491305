"""Results of the benchmarks as Markdown: the machine, the measured rows, the goals of the issue, notes."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from procs import Measurement, MiB

__all__ = [
    "OP_PACK",
    "OP_PULL",
    "OP_PULLX",
    "OP_PUSH",
    "SECTIONS",
    "SERVE_BEGIN",
    "SERVE_END",
    "Row",
    "goals_table",
    "machine_info",
    "markdown_table",
    "notes",
    "render_document",
    "split_section",
    "split_serve_section",
    "write_outside_serve_section",
    "write_section",
    "write_serve_section",
]

OP_PACK, OP_PUSH, OP_PULLX, OP_PULL = "pack + push dir", "push tgz", "pull + extract", "download tgz"

RSS_GOAL_MIB = 100.0
PULL_GOAL = 1.0  # pull+extract: specman at least as fast as curl | tar ...
PULL_STRETCH = 2.0  # ... and the goal is twice as fast
PUSH_GOAL = 0.9  # upload: specman at least 0.9x curl

# docs/benchmarks.md holds three reports: run.py owns everything outside the blocks, serve.py and migrate.py theirs.
SERVE_BEGIN, SERVE_END = "<!-- serve:begin -->", "<!-- serve:end -->"


@dataclass
class Row:
    """One measured command of one dataset, repeated: the median is reported, with min and max."""

    dataset: str
    operation: str
    tool: str
    nbytes: int  # bytes per run used for MiB/s
    baseline: str | None = None  # tool of the same dataset/operation the "vs curl" ratio is taken against
    runs: list[Measurement] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def rss(self) -> float:
        """Peak RSS over all repetitions (the worst run), MiB."""
        return max(m.peak_rss_mib for m in self.runs)

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.median if self.median > 0 else float("inf")


def _find(rows: Sequence[Row], dataset: str, operation: str, tool: str) -> Row | None:
    return next((r for r in rows if (r.dataset, r.operation, r.tool) == (dataset, operation, tool)), None)


def ratio(rows: Sequence[Row], row: Row) -> float | None:
    """Baseline median time / this row's median time: above 1 means faster than the baseline."""
    if row.baseline is None:
        return None
    base = _find(rows, row.dataset, row.operation, row.baseline)
    return None if base is None or row.median == 0 else base.median / row.median


def markdown_table(rows: Sequence[Row]) -> str:
    head = (
        "| dataset | operation | tool | median s | min–max s | MiB/s | vs curl | peak RSS MiB |\n"
        "|---|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        q = ratio(rows, r)
        secs = [m.seconds for m in r.runs]
        tool = r.tool.replace("|", "\\|")
        lines.append(
            f"| {r.dataset} | {r.operation} | {tool} | {r.median:.2f} | {min(secs):.2f}–{max(secs):.2f} | "
            f"{r.mib_s:.0f} | {'–' if q is None else f'{q:.2f}×'} | {r.rss:.1f} |"
        )
    return "\n".join(lines)


def goals_table(rows: Sequence[Row], pull_op: str = OP_PULLX, push_op: str = OP_PUSH) -> str:
    lines = ["| dataset | goal | measured | status |", "|---|---|---|---|"]
    for dataset in dict.fromkeys(r.dataset for r in rows):
        pull = _find(rows, dataset, pull_op, "specman")
        q = None if pull is None else ratio(rows, pull)
        if q is not None:
            status = (
                "met (2× goal too)" if q >= PULL_STRETCH else "met (below the 2× goal)" if q >= PULL_GOAL else "MISSED"
            )
            lines.append(f"| {dataset} | pull+extract ≥ 1.0× curl \\| tar (goal 2×) | {q:.2f}× | {status} |")
        push = _find(rows, dataset, push_op, "specman")
        q = None if push is None else ratio(rows, push)
        if q is not None:
            lines.append(f"| {dataset} | push ≥ 0.9× curl | {q:.2f}× | {'met' if q >= PUSH_GOAL else 'MISSED'} |")
        mine = [r for r in rows if r.dataset == dataset and r.tool.startswith("specman")]
        if mine:
            worst = max(mine, key=lambda r: r.rss)
            status = "met" if worst.rss <= RSS_GOAL_MIB else "MISSED"
            lines.append(
                f"| {dataset} | specman peak RSS ≤ 100 MiB | {worst.rss:.1f} MiB ({worst.operation}) | {status} |"
            )
    return "\n".join(lines)


def _first_line(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    out = (done.stdout or done.stderr).strip().splitlines()
    return out[0] if out else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def _filesystem(path: Path) -> str:
    fs = "?"
    if shutil.which("findmnt"):
        done = subprocess.run(
            ["findmnt", "-n", "-T", str(path), "-o", "SOURCE,FSTYPE,TARGET"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            source, fstype, target = [*done.stdout.split(), "?", "?", "?"][:3]
            fs = f"{fstype} on {source} (mounted at {target})"
            dev = Path("/sys/class/block") / Path(source).name / "queue" / "rotational"
            if not dev.exists():
                dev = Path("/sys/class/block") / Path(source).name / ".." / "queue" / "rotational"
            if dev.exists():
                kind = "rotational" if dev.read_text().strip() == "1" else "non-rotational"
                fs += f", reported {kind} by the kernel"
    usage = shutil.disk_usage(path)
    return f"{fs}; {usage.total / (1 << 30):.0f} GiB, {usage.free / (1 << 30):.0f} GiB free"


def machine_info(work_dir: Path, registry_binary: str) -> list[tuple[str, str]]:
    try:
        specman_version = metadata.version("specman")
    except metadata.PackageNotFoundError:
        specman_version = "?"
    try:
        oras_version = metadata.version("oras")
    except metadata.PackageNotFoundError:
        oras_version = "not installed"
    return [
        ("CPUs (`nproc`)", f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()})"),
        ("CPU model", _cpu_model()),
        ("memory", _memory()),
        ("work dir file system", f"`{work_dir}`: {_filesystem(work_dir)}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("specman", specman_version),
        ("docker-registry", _first_line([registry_binary, "--version"])),
        ("curl", " ".join(_first_line(["curl", "--version"]).split()[:3])),
        ("tar", _first_line(["tar", "--version"])),
        ("oras-py", oras_version),
    ]


def render_document(
    *,
    title: str,
    date: str,
    command: str,
    machine: Sequence[tuple[str, str]],
    datasets: Sequence[str],
    results: str,
    goals: str,
    notes: Sequence[str],
    warning: str | None = None,
) -> str:
    parts = [f"# {title}", ""]
    if warning:
        parts += [f"> **{warning}**", ""]
    parts += [f"Measured {date} with:", "", "```sh", command, "```", ""]
    parts += ["## Machine", "", "| | |", "|---|---|"]
    parts += ["| " + k + " | " + v.replace("|", "\\|") + " |" for k, v in machine]
    parts += ["", "## Datasets", ""] + [f"- {d}" for d in datasets]
    parts += ["", "## Results", "", results, "", "## Goals", "", goals, "", "## Notes", ""]
    parts += [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def notes(*, repeat: int, rss: str, floor: float, cache: str, startup: float) -> list[str]:
    """The notes under the tables: what each row measures and how."""
    return [
        f"Each command ran {repeat} time(s) as a child process; *median s* is the median wall time, *min–max s* "
        "the range, *MiB/s* uses the median. *peak RSS MiB* is the worst run's peak RSS of the child (for "
        "`curl | tar` the larger of the two; for the curl upload the larger of the POST and the PUT): "
        f"{rss}; the method reports {floor:.1f} MiB for `true`. (`os.wait4` called straight from the "
        "Python runner would report at least the runner's own RSS for every child: Linux keeps the high-water mark "
        "of the pre-`exec` copy of the parent.)",
        f"*{OP_PACK}*: `specman push DIR REF --plain-http`: deterministic tgz packing plus upload, source files read "
        "from a cold cache. MiB/s counts the dataset's bytes.",
        f"*{OP_PUSH}*: the same tgz (taken with `specman pull --no-extract` from the pushed artifact) uploaded to a "
        "new repository each time: `specman push FILE.tgz` (all of it: config blob, the layer and its digest, the "
        "manifest, Python start-up), `curl`: `POST /v2/NAME/blobs/uploads/` then `curl -T FILE -X PUT "
        "LOCATION&digest=...` (the digest computed beforehand, not timed; no config blob, no manifest), oras-py "
        "`push` (reads the whole blob into memory). MiB/s counts the tgz's bytes; *vs curl* = curl's time / the "
        "tool's time (above 1: faster).",
        f"*{OP_PULLX}*: into an empty directory: `specman pull REF DEST --plain-http` (manifest, streamed download, "
        "digest check, safe extraction) vs `curl -s BLOB_URL | tar -xzf - -C DEST` (no verification). MiB/s counts "
        "the dataset's bytes; *vs curl* = (curl | tar time) / specman time, above 1 means specman is faster. Times "
        "end when the processes exit: written data may still be in the page cache (no fsync, for both).",
        f"*{OP_PULL}*: the blob to a file only: `specman pull --no-extract`, `curl -o FILE`, oras-py `pull` (does "
        "not verify the digest).",
        cache,
        f"Python start-up and imports: `specman --version` takes {startup:.2f} s here (included in every specman "
        "row); oras-py rows include its interpreter start too.",
        "The registry (docker-registry, filesystem storage in the work dir, access log off) runs on 127.0.0.1 over "
        "plain http and shares the CPUs with the client being measured. Tools run in a different order each "
        "repetition.",
        "Goals of the issue: pull+extract at least 1.0x `curl | tar` (goal 2x), push at least 0.9x curl, specman "
        "peak RSS at most 100 MiB. Reference figures (REGISTRY-NOTES.md, same kind of machine, cold cache): curl "
        "GET http to a file 551 MiB/s, curl streamed PUT 221 MiB/s, oras-py pull/push 293/114 MiB/s at 33/1057 MiB, "
        "`tar -xzf` ~140 MiB/s (65,536 x 16 KiB) / ~220 MiB/s (4 x 256 MiB).",
    ]


def split_section(doc: str, name: str = "serve") -> tuple[str, str | None]:
    """``doc`` without its ``name`` block (and the blank lines around it), and the block itself (markers included)."""
    begin, end_marker = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start = doc.find(begin)
    end = doc.find(end_marker, start)
    if start < 0 or end < 0:
        return doc, None
    end += len(end_marker)
    rest = doc[:start].rstrip("\n") + "\n" + doc[end:].lstrip("\n")
    return (rest if rest.strip() else ""), doc[start:end]


def split_serve_section(doc: str) -> tuple[str, str | None]:
    return split_section(doc, "serve")


SECTIONS = ("serve", "migrate", "storage", "signatures", "startup")  # written by the benchmark scripts of those names


def write_outside_serve_section(path: Path, doc: str) -> None:
    """Write ``doc`` (run.py's report) to ``path``, keeping the serve and migrate blocks already there at the end."""
    old = path.read_text() if path.is_file() else ""
    blocks = [block for name in SECTIONS if (block := split_section(old, name)[1]) is not None]
    path.write_text("\n\n".join([doc.rstrip("\n"), *blocks]) + "\n")


def write_section(path: Path, body: str, name: str = "serve") -> None:
    """Replace the ``name`` block of ``path`` with ``body`` (appended when there is none; the rest is kept)."""
    rest = split_section(path.read_text(), name)[0] if path.is_file() else ""
    block = f"<!-- {name}:begin -->\n{body.strip()}\n<!-- {name}:end -->"
    path.write_text((rest.rstrip("\n") + "\n\n" if rest.strip() else "") + block + "\n")


def write_serve_section(path: Path, body: str) -> None:
    write_section(path, body, "serve")
