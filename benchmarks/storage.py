"""The storage benchmark (issue 16): 20 versions of 1,000 files, 1 % of the files changed per version.

    uv run --locked python benchmarks/storage.py [--quick] [--versions 20] [--files 1000] [--seconds 5]
                                                 [--work-dir benchmarks/.data] [--output docs/benchmarks.md]

Data: version 1 is ``--files`` files of random bytes (16-112 KiB, in 4 directories, plus one 4 KiB file for the
serving case); each next version replaces the content of 1 % of the files.  Each version is packed once with
``tar -czf`` (the migration's documented command) and pushed as is (``specman push FILE``) to a local plain-http
``docker-registry`` as tag ``1.0.<k>``.  After each push, in the same run, in alternating order:

* **pooled** - ``specman sync --once`` of this checkout into its data dir (the object pool);
* **previous** - the same sync with the store of the base commit (``git merge-base HEAD main``: one tree per
  version, merged views hard-linked), its ``src`` extracted into the work dir and run with ``PYTHONPATH``;
* **tar** - ``tar -xzf`` of the same archive into a directory of its own (what a copy per version costs).

Reported: ``du -s -B1`` and ``du -s --inodes`` of each (hard links counted once, as on the volume) against the
unique bytes and unique files of the 20 versions (computed from the generated data), the wall time of the first
and the last sync (whole process: start-up, listing, download, extraction, publishing, gc), and the ``Stored``
duration of the log (download + extraction of that version).  Serving: ``specman serve`` on each data dir; the
``ETag`` of every file of the last version compared between the two, then ``wrk -t2 -c50`` on the 4 KiB file,
twice each, alternating.  Goals: disk <= 1.2x unique bytes, inodes <= 1.2x unique files, the 20th sync <= 0.6x
the first, serving unchanged.  Page caches are not dropped (both stores are measured alike).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from procs import MiB, fresh_dir, interrupt, kill_running, log, run, specman_command
from report import machine_info, write_section
from serving import run_wrk

if TYPE_CHECKING:
    from tests.fixtures.serve import ServeProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAME = "bench/storage"
DISK_GOAL, INODE_GOAL, SYNC_GOAL = 1.2, 1.2, 0.6
STORED = re.compile(r'msg="Stored (\S+)".*?duration=([0-9.]+)s')
NOTES = (
    "- *reconcile* is the `Sync finished duration=` of the log (the process's start-up excluded), *`Stored`*"
    " the download and extraction of the one new version. Both stores download, decompress and hash every byte"
    " of it (a digest is known only once the bytes are read); the pooled one writes only the files the pool"
    " lacks, and builds the merged view without reading file contents (a path shared by two versions is one"
    " inode: no comparison needed).",
    "- The machine is shared (2 CPUs, other jobs running): one sync varies by 2-3x between rounds, hence the"
    " medians and the CPU seconds, which vary far less.",
    "- `tar -xzf` is followed by `sync -f` (the store flushes too before publishing); its disk use is one"
    " directory per version, as a store without sharing needs.",
)
FINISHED = re.compile(r'msg="Sync finished".*?duration=([0-9.]+)s')


@dataclass
class Versions:
    """The generated versions: path -> content of each, and the archives."""

    trees: list[dict[str, bytes]] = field(default_factory=list)
    archives: list[Path] = field(default_factory=list)

    def unique(self) -> tuple[int, int]:
        """(distinct contents, their bytes) over all versions."""
        seen: dict[str, int] = {}
        for tree in self.trees:
            for data in tree.values():
                seen.setdefault(hashlib.sha256(data).hexdigest(), len(data))
        return len(seen), sum(seen.values())


def generate(work: Path, count: int, files: int) -> Versions:
    rng = random.Random(16)
    tree = {f"d{i % 4}/f{i:05d}.json": rng.randbytes(rng.randrange(16, 112) << 10) for i in range(files)}
    tree["small/4k.bin"] = rng.randbytes(4096)
    names = sorted(n for n in tree if n.startswith("d"))
    versions = Versions()
    for k in range(1, count + 1):
        if k > 1:
            tree = dict(tree)
            for name in rng.sample(names, max(1, files // 100)):
                tree[name] = rng.randbytes(rng.randrange(16, 112) << 10)
        source = fresh_dir(work / "src")
        for name, data in tree.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
        archive = work / f"v{k}.tgz"
        subprocess.run(["tar", "-czf", str(archive), "-C", str(source), "."], check=True)
        versions.trees.append(tree)
        versions.archives.append(archive)
    return versions


def du(path: Path) -> tuple[int, int]:
    """(bytes of blocks, inodes) of ``path``, each inode counted once (``du -s -B1``, ``du -s --inodes``)."""
    size = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    inodes = subprocess.run(["du", "-s", "--inodes", str(path)], capture_output=True, text=True, check=True)
    return int(size.stdout.split()[0]), int(inodes.stdout.split()[0])


def previous_store(work: Path) -> tuple[Path, str]:
    """The base commit's ``src`` in ``work/previous`` (PYTHONPATH for the previous store), and its commit."""
    base = subprocess.run(
        ["git", "-C", str(REPO), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = fresh_dir(work / "previous")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", base, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src", base[:12]


@dataclass
class Syncs:
    wall: list[float] = field(default_factory=list)  # the whole process
    cpu: list[float] = field(default_factory=list)  # user + system seconds of the process
    reconcile: list[float] = field(default_factory=list)  # ``Sync finished duration=`` (start-up excluded)
    stored: list[float] = field(default_factory=list)  # ``Stored duration=``: download + extraction


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, argv: list[str], env: dict[str, str], logfile: Path, into: Syncs) -> None:
    before = _children_cpu()
    measured = run([argv], log=logfile, env=env, timeout=900)
    into.cpu.append(_children_cpu() - before)
    into.wall.append(measured.seconds)
    text = logfile.read_text()
    stored, finished = STORED.findall(text), FINISHED.findall(text)
    into.stored.append(float(stored[-1][1]) if stored else float("nan"))
    into.reconcile.append(float(finished[-1]) if finished else float("nan"))


def etags(sp: ServeProcess, tree: dict[str, bytes], tag: str) -> dict[str, str]:
    with sp.client(timeout=30.0) as client:
        return {name: client.head(f"/_specman/versions/{tag}/{name}").headers.get("etag", "") for name in tree}


def serving(
    data: dict[str, Path], versions: Versions, source: list[str], env: dict[str, str], work: Path, seconds: int
) -> tuple[dict[str, list[float]], str]:
    from tests.fixtures.serve import start_serve

    tag = f"1.0.{len(versions.trees)}"
    last = versions.trees[-1]
    servers = {
        label: start_serve(source, path, tls=False, workers=2, extra_args=["--interval", "1h"], env=env)
        for label, path in data.items()
    }
    try:
        found = {label: etags(sp, last, tag) for label, sp in servers.items()}
        expected = {name: f'"{hashlib.sha256(d).hexdigest()[:32]}"' for name, d in last.items()}
        same = "identical" if all(f == expected for f in found.values()) else "DIFFERENT"
        rates: dict[str, list[float]] = {label: [] for label in servers}
        for round_ in range(3):
            for label in list(servers) if round_ == 0 else list(reversed(servers)):
                url = f"{servers[label].base}/small/4k.bin"
                result = run_wrk(url, work=work, threads=2, connections=50, seconds=seconds, request_timeout=10)
                rates[label].append(result.req_s)
        return rates, f"{same} ({len(last)} files, both stores against the content's sha256)"
    finally:
        for sp in servers.values():
            sp.kill9()


def _sync_argv(source: list[str], data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "specman", "sync", *source, "--data-dir", str(data), "--once", *extra]


def progressive(
    versions: Versions, host: str, source: list[str], envs: dict[str, dict[str, str]], data: dict[str, Path], work: Path
) -> dict[str, Syncs]:
    """Push each version and sync it at once into both data dirs, extract it with tar; a copy of both data dirs
    is kept before the last version (``<data>.before-last``, hard links kept) for ``repeated``."""
    syncs = {"pooled": Syncs(), "previous": Syncs(), "tar": Syncs()}
    count = len(versions.archives)
    for k, archive in enumerate(versions.archives, start=1):
        if k == count:
            for path in data.values():
                subprocess.run(["cp", "-a", str(path), f"{path}.before-last"], check=True)
        push = [*specman_command(), "push", str(archive), f"{host}/{NAME}:1.0.{k}", "--plain-http"]
        run([push], log=work / "push.log", env=envs["pooled"])
        for label in ["pooled", "previous"] if k % 2 else ["previous", "pooled"]:
            logfile = work / f"sync-{label}-{k}.log"
            measure(label, _sync_argv(source, data[label]), envs[label], logfile, syncs[label])
        target = fresh_dir(work / "tar" / f"v{k}")
        where, into = shlex.quote(str(archive)), shlex.quote(str(target))
        tar = f"tar -xzf {where} -C {into} && sync -f {into}"  # durable, as the store
        measure("tar", ["sh", "-c", tar], envs["pooled"], work / "tar.log", syncs["tar"])
        done = {label: f"{syncs[label].reconcile[-1]:.2f} s" for label in ("pooled", "previous")}
        log(f"version {k}: reconcile {done}")
    return syncs


def repeated(
    count: int, source: list[str], envs: dict[str, dict[str, str]], data: dict[str, Path], work: Path, rounds: int
) -> dict[str, dict[str, Syncs]]:
    """``rounds`` times, alternating the stores: the first version alone into an empty data dir (``--tags``), and
    the last version into a copy of the data dir holding all the others: the two syncs the goal compares."""
    found = {label: {"first": Syncs(), "last": Syncs()} for label in data}
    for number in range(rounds):
        for label in list(data) if number % 2 == 0 else list(reversed(data)):
            scratch = work / f"repeat-{label}"
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
            argv = _sync_argv(source, scratch, "--tags", "1.0.1")
            measure(label, argv, envs[label], work / f"first-{label}-{number}.log", found[label]["first"])
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
            subprocess.run(["cp", "-a", f"{data[label]}.before-last", str(scratch)], check=True)
            argv = _sync_argv(source, scratch)
            measure(label, argv, envs[label], work / f"last-{label}-{number}.log", found[label]["last"])
        log(f"round {number + 1}: { ({k: round(v['last'].reconcile[-1], 2) for k, v in found.items()}) }")
    subprocess.run(["rm", "-rf", *(str(work / f"repeat-{label}") for label in data)], check=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 versions of 100 files, no report")
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each serving run")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of the first and the last sync")
    parser.add_argument("--work-dir", type=Path, default=HERE / ".data")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.versions, args.files, args.seconds, args.rounds = 3, 100, 1, 1
    elif args.output is None:
        args.output = REPO / "docs" / "benchmarks.md"
    signal.signal(signal.SIGTERM, interrupt)
    sys.path.insert(0, str(REPO))
    from tests.fixtures.registry import start_registry, stop_registry

    started = time.monotonic()
    when = datetime.now(UTC)
    work = fresh_dir(args.work_dir.resolve() / "storage")
    registry = start_registry(work / "registry", "plain", log_level="error")
    try:
        log(f"generating {args.versions} versions of {args.files} files ...")
        versions = generate(work, args.versions, args.files)
        prev_src, base = previous_store(work)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        prev_env = {**env, "PYTHONPATH": str(prev_src)}
        probe = [sys.executable, "-c", "import specman.store.store as s; print(s.__file__)"]
        loaded = subprocess.run(probe, env=prev_env, capture_output=True, text=True, check=True).stdout
        if not loaded.startswith(str(prev_src)):
            raise RuntimeError(f"the previous store is not the one loaded: {loaded}")
        source = [f"{registry.host}/{NAME}", "--plain-http"]
        envs = {"pooled": env, "previous": prev_env}
        data = {"pooled": work / "data-pooled", "previous": work / "data-previous"}
        syncs = progressive(versions, registry.host, source, envs, data, work)
        repeats = repeated(len(versions.archives), source, envs, data, work, args.rounds)
        usage = {label: du(path) for label, path in data.items()}
        usage["tar"] = du(work / "tar")
        rates, etag_check = serving(data, versions, source, env, work, args.seconds)
        report = render(
            args, versions, usage, syncs, repeats, rates, etag_check, base, when, time.monotonic() - started
        )
        print(report)
        if args.output is not None:
            write_section(args.output, report, "storage")
        return 0
    finally:
        stop_registry(registry)
        kill_running()
        shutil.rmtree(work, ignore_errors=True)


def _mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def _met(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def _table(
    usage: dict[str, tuple[int, int]],
    syncs: dict[str, Syncs],
    repeats: dict[str, dict[str, Syncs]],
    unique: tuple[int, int],
    base: str,
) -> list[str]:
    files, size = unique
    kinds = ("pooled", "previous", "tar")

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    rows = [
        f"| | pooled store (this branch) | previous store ({base}) | `tar -xzf` per version |",
        "|---|---:|---:|---:|",
        row("disk use (`du -s -B1`)", [_mib(usage[k][0]) for k in kinds]),
        row("disk use / unique bytes", [f"{usage[k][0] / size:.2f}×" for k in kinds]),
        row("inodes (`du -s --inodes`)", [f"{usage[k][1]:,}" for k in kinds]),
        row("inodes / unique files", [f"{usage[k][1] / files:.2f}×" for k in kinds]),
    ]
    for label, index in (("first", 0), ("last", -1)):
        rows.append(row(f"{label} version, progressive run: reconcile", [*_cells(syncs, kinds[:2], index), "–"]))
        rows.append(
            row(f"{label} version, progressive run: process wall / CPU", [_wall_cpu(syncs[k], index) for k in kinds])
        )
    for which, what in (
        ("first", "first version into an empty data dir"),
        ("last", "last version added to the others"),
    ):
        for key, name in (
            ("reconcile", "reconcile"),
            ("stored", "`Stored` (download + extract)"),
            ("cpu", "process CPU"),
        ):
            cells = [f"{statistics.median(getattr(repeats[k][which], key)):.2f} s" for k in kinds[:2]]
            rows.append(row(f"{what}, median: {name}", [*cells, "–"]))
    ratios = [_median_ratio(repeats[k], "reconcile") + " / " + _median_ratio(repeats[k], "cpu") for k in kinds[:2]]
    rows.append(row("last / first, medians: reconcile / CPU", [*ratios, "–"]))
    return rows


def _cells(syncs: dict[str, Syncs], kinds: tuple[str, ...], index: int) -> list[str]:
    return [f"{syncs[k].reconcile[index]:.2f} s" for k in kinds]


def _median_ratio(pair: dict[str, Syncs], key: str) -> str:
    return f"{statistics.median(getattr(pair['last'], key)) / statistics.median(getattr(pair['first'], key)):.2f}×"


def _wall_cpu(syncs: Syncs, index: int) -> str:
    return f"{syncs.wall[index]:.2f} / {syncs.cpu[index]:.2f} s"


def render(
    args: argparse.Namespace,
    versions: Versions,
    usage: dict[str, tuple[int, int]],
    syncs: dict[str, Syncs],
    repeats: dict[str, dict[str, Syncs]],
    rates: dict[str, list[float]],
    etag_check: str,
    base: str,
    when: datetime,
    took: float,
) -> str:
    files, unique = versions.unique()
    rows = _table(usage, syncs, repeats, (files, unique), base)
    runs = {k: " / ".join(f"{r:,.0f}" for r in v) for k, v in rates.items()}
    rows.append(f"| 4 KiB file, `wrk -t2 -c50 -d{args.seconds}s`, req/s | {runs['pooled']} | {runs['previous']} | – |")
    disk, inodes = usage["pooled"][0] / unique, usage["pooled"][1] / files
    pooled = repeats["pooled"]
    ratio = statistics.median(pooled["last"].reconcile) / statistics.median(pooled["first"].reconcile)
    median = {k: statistics.median(v) for k, v in rates.items()}
    goals = [
        f"- disk use ≤ {DISK_GOAL}× unique bytes: {disk:.2f}× — {_met(disk, DISK_GOAL)}",
        f"- inodes ≤ {INODE_GOAL}× unique files: {inodes:.2f}× — {_met(inodes, INODE_GOAL)}",
        f"- sync of version {len(versions.trees)} ≤ {SYNC_GOAL}× the first (reconcile, medians of {args.rounds}):"
        f" {ratio:.2f}× —"
        f" {_met(ratio, SYNC_GOAL)}",
        f"- serving unchanged: ETags {etag_check}; req/s median pooled {median['pooled']:,.0f}"
        f" vs previous {median['previous']:,.0f} ({median['pooled'] / median['previous']:.2f}×)",
    ]
    machine = machine_info(Path(args.work_dir).resolve(), "docker-registry")
    wanted = ("CPUs (`nproc`)", "work dir file system", "kernel")
    size = sum(map(len, versions.trees[0].values()))
    return "\n".join(
        [
            "## Storage benchmark (`benchmarks/storage.py`)",
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC (the whole run took {took / 60:.1f} min) with:",
            "",
            "```sh",
            "uv run --locked python benchmarks/storage.py",
            "```",
            "",
            f"{len(versions.trees)} versions of {args.files:,} files (+ one 4 KiB file) of random bytes, 1 % of the"
            f" files changed per version: {files:,} unique files, {_mib(unique)} unique bytes, {_mib(size)} per"
            " version. Each version is synced right after its push (wall time of the whole `specman sync --once`"
            " process), so the last sync publishes a view of all of them.",
            "",
            *rows,
            "",
            "Goals of issue 16:",
            "",
            *goals,
            "",
            "Notes:",
            "",
            *NOTES,
            "",
            "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine if k in wanted),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
