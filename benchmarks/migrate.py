"""The migration benchmark: ``specman migrate`` from an nginx SCAR against the manual pipeline, in the same run.

    uv run --locked python benchmarks/migrate.py [--quick] [--rounds 3] [--work-dir benchmarks/.data] [--output ...]

The old SCAR is nginx (autoindex on) serving 10,000 files / 1 GiB of JSON-like text (``generate_tree`` with
``compressible=True``) plus the bundled sample manifests (their cloud type files make the console's jobs succeed).
Both pipelines end with the content served by ``specman`` from a local ``docker-registry``:

* **manual** — what the documentation has operators do, timed stage by stage: ``tar -czf`` of the directory,
  ``sha256sum``, the ``curl`` uploads (config, blob, manifest), then ``specman sync --once`` into a fresh data dir;
* **specman migrate** — from the SCAR's URL (it crawls nginx's listings and copies every file), preflight, pack,
  push, notification, wait until ``specman serve`` serves it, the parity proof (the SCAR read again with its
  validators, every file fetched from specman over HTTPS and hashed), the switch and both console jobs.

Both run ``--rounds`` times (default 3), alternating which goes first, each round against a registry and a
``specman serve`` of its own; the report gives medians: on a shared 2-CPU machine one pair of runs varied from
0.96x to 1.24x between runs of the same code.
Goal (issue 6): migrate at most 1.2x the manual pipeline's time, peak RSS at most 150 MiB.
``--quick`` (100 files x 64 KiB) is the smoke run.  Everything it starts is stopped on exit and its temporary
data removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import Measurement, MiB, fresh_dir, interrupt, kill_running, log, remove_stale_runs, run, specman_command
from report import machine_info, write_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TIME_GOAL, RSS_GOAL = 1.2, 150.0
NAME = "spectro-packs/spectro-manifests/manifest"

_CURL_PUSH = r"""
set -euo pipefail
reg=$1; repo=$2; tgz=$3; digest=$4; size=$(stat -c %s "$tgz")
upload() {  # $1 = digest, $2 = file
  loc=$(curl -sfS -X POST -D - -o /dev/null "$reg/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="$reg$loc";; esac
  sep='?'; case "$loc" in *\?*) sep='&';; esac
  curl -sfS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc${sep}digest=$1" -o /dev/null
}
printf '{}' > "$tgz.config"
upload sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a "$tgz.config"
upload "$digest" "$tgz"
cat > "$tgz.manifest" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.unknown.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$digest","size":$size,"annotations":{"org.opencontainers.image.title":"manifests.tgz"}}]}
EOF
curl -sfS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$tgz.manifest" \
  "$reg/v2/$repo/manifests/0.0.0" -o /dev/null
"""


def make_scar(root: Path, files: int, file_size: int) -> tuple[int, int]:
    """The SCAR's directory: the synthetic tree plus the sample manifests; (files, bytes)."""
    from specman.samples import bundled_manifests, generate_tree

    marker = root.with_suffix(".json")
    wanted = {"files": files, "file_size": file_size}
    if not (marker.is_file() and json.loads(marker.read_text()).get("params") == wanted and root.is_dir()):
        shutil.rmtree(root, ignore_errors=True)
        log(f"generating {files} files x {file_size} B in {root} ...")
        generate_tree(root / "data", files=files, file_size=file_size, seed=6, compressible=True)
        shutil.copytree(bundled_manifests(), root, dirs_exist_ok=True)
        count = sum(len(f) for _, _, f in os.walk(root))
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        marker.write_text(json.dumps({"params": wanted, "files": count, "bytes": size}))
    found = json.loads(marker.read_text())
    return int(found["files"]), int(found["bytes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 files x 64 KiB: a smoke run")
    parser.add_argument("--work-dir", type=Path, default=HERE / ".data")
    parser.add_argument("--output", type=Path, default=None, help="default: docs/benchmarks.md (none with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both pipelines (default 3; 1 with --quick)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for tool, package in (("nginx", "nginx-light"), ("docker-registry", "docker-registry"), ("curl", "curl")):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install -y {package}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, interrupt)
    sys.path.insert(0, str(REPO))  # tests.fixtures: the registry, console and serve launchers
    from tests.fixtures.certs import make_certs
    from tests.fixtures.console import ADMIN_PASSWORD, start_console
    from tests.fixtures.nginx import ScarNginx
    from tests.fixtures.registry import start_registry, stop_registry
    from tests.fixtures.serve import start_serve

    output = args.output or (None if args.quick else REPO / "docs" / "benchmarks.md")
    files, size = (100, 64 << 10) if args.quick else (10_000, (1 << 30) // 10_000)
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_runs(work)
    run_dir = fresh_dir(work / f"run-{os.getpid()}")
    scar_root = work / ("migrate-scar-quick" if args.quick else "migrate-scar")
    n_files, n_bytes = make_scar(scar_root, files, size)
    stops: list[object] = []
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SPECMAN_")}
    try:
        certs = make_certs(run_dir / "certs")
        nginx = ScarNginx(run_dir / "nginx", scar_root).start()
        stops.append(nginx.stop)
        console = start_console(run_dir / "console")
        stops.append(console.stop)
        (run_dir / "pw").write_text(ADMIN_PASSWORD + "\n")
        (run_dir / "token").write_text("bench-notify-token\n")
        bench = Bench(run_dir, nginx, console, env)
        rounds: list[Round] = []
        for index in range(args.rounds):
            # a registry of its own each round: the migration would rightly skip pushing an artifact it finds
            bench.registry = start_registry(fresh_dir(run_dir / "registry"), "plain", certs)
            try:
                # alternate the order: whichever runs first pays for the cold page cache of the SCAR's files
                manual = bench.manual() if index % 2 == 0 else None
                migrate, summary = bench.migrate(start_serve)
                manual = manual or bench.manual()
            finally:
                stop_registry(bench.registry)
            rounds.append(Round(manual, migrate, summary))
            times = f"manual {manual.total.seconds:.2f} s, migrate {migrate.seconds:.2f} s"
            log(f"round {index + 1}/{args.rounds}: {times}")
        table = report(n_files, n_bytes, rounds)
        print(table)
        if output is not None:
            write_section(output, table, "migrate")
            log(f"wrote the migrate section of {output}")
        manual_s, migrate_s = _medians(rounds)
        peak = max(r.migrate.peak_rss_mib for r in rounds)
        met = migrate_s <= TIME_GOAL * manual_s and peak <= RSS_GOAL
        return 0 if met or args.quick else 1  # the smoke run's tiny tree measures fixed costs, not the goal
    finally:
        for stop in reversed(stops):
            stop()  # type: ignore[operator]
        kill_running()
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class Manual:
    """One run of the manual pipeline, stage by stage."""

    tar: Measurement
    sha: Measurement
    push: Measurement
    sync: Measurement

    @property
    def total(self) -> Measurement:
        return self.tar + self.sha + self.push + self.sync


@dataclass
class Round:
    manual: Manual
    migrate: Measurement
    summary: dict[str, Any]


@dataclass
class Bench:
    """The parts every round shares (nginx as the SCAR, the console) and the round's registry."""

    run_dir: Path
    nginx: Any
    console: Any
    env: dict[str, str]
    registry: Any = None

    def manual(self) -> Manual:
        run_dir, env, scar_root = self.run_dir, self.env, self.nginx.root
        tgz = run_dir / "manifests.tgz"
        tar = run([["tar", "-czf", str(tgz), "-C", str(scar_root), "."]], log=run_dir / "tar.log", env=env)
        digest_out = run_dir / "digest"
        sha = run([["sha256sum", str(tgz)]], log=run_dir / "sha.log", stdout=digest_out, env=env)
        digest = "sha256:" + digest_out.read_text().split()[0]
        repo = "manual/manifest"
        push = run(
            [["bash", "-c", _CURL_PUSH, "push", self.registry.url, repo, str(tgz), digest]],
            log=run_dir / "curl.log",
            env=env,
        )
        data = fresh_dir(run_dir / "m")
        sync_args = ["sync", f"{self.registry.host}/{repo}", "--plain-http", "--data-dir", str(data), "--once"]
        sync = run([[*specman_command(), *sync_args]], log=run_dir / "sync.log", env=env)
        done = Manual(tar, sha, push, sync)
        log(
            f"manual: tar {tar.seconds:.2f} s, sha256 {sha.seconds:.2f} s, curl push {push.seconds:.2f} s, "
            f"sync {sync.seconds:.2f} s = {done.total.seconds:.2f} s"
        )
        return done

    def migrate(self, start_serve: Any) -> tuple[Measurement, dict[str, Any]]:
        run_dir, repo = self.run_dir, NAME
        serve = start_serve(
            [f"{self.registry.host}/{repo}", "--plain-http"],
            fresh_dir(run_dir / "serve"),
            extra_args=["--interval", "1h", "--notify-token-file", str(run_dir / "token")],
        )
        try:
            summary_file = run_dir / "summary.json"
            migrate = run(
                [
                    [
                        *specman_command(),
                        *("migrate", "--from", self.nginx.url("/"), "--to", f"{self.registry.host}/{repo}:0.0.0"),
                        *("--plain-http", "--console", self.console.base, "--console-ca-file", str(self.console.ca)),
                        *("--console-password-file", str(run_dir / "pw"), "--specman"),
                        *(f"https://127.0.0.1:{serve.port}", "--specman-ca-file", str(serve.ca)),
                        *("--notify-token-file", str(run_dir / "token"), "--work-dir"),
                        *(str(fresh_dir(run_dir / "migrate")), "--yes", "--json", "--timeout", "600"),
                    ]
                ],
                log=run_dir / "migrate.log",
                stdout=summary_file,
                env=self.env,
                timeout=1800,
            )
        finally:
            serve.stop()
        summary = json.loads(summary_file.read_text())
        if not summary.get("ok") or not summary["parity"]["ok"]:
            raise RuntimeError(f"the migration did not succeed: {summary.get('error')}")
        log(f"migrate: {migrate.seconds:.2f} s, peak RSS {migrate.peak_rss_mib:.0f} MiB; {summary['durations']}")
        return migrate, summary


def _medians(rounds: list[Round]) -> tuple[float, float]:
    """The median times of the manual pipeline and of the migration over the rounds."""
    manual = statistics.median(r.manual.total.seconds for r in rounds)
    return manual, statistics.median(r.migrate.seconds for r in rounds)


def report(files: int, nbytes: int, rounds: list[Round]) -> str:
    manual_s, migrate_s = _medians(rounds)
    ratio = migrate_s / manual_s
    middle = sorted(rounds, key=lambda r: r.migrate.seconds)[len(rounds) // 2]  # the median migration's phases
    stage = {
        name: statistics.median(getattr(r.manual, name).seconds for r in rounds)
        for name in ("tar", "sha", "push", "sync")
    }
    manual_rss = max(r.manual.total.peak_rss_mib for r in rounds)
    migrate_rss = max(r.migrate.peak_rss_mib for r in rounds)
    durations = middle.summary["durations"]
    assert isinstance(durations, dict)
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in durations.items() if k != "total")
    per_round = "; ".join(
        f"{r.manual.total.seconds:.2f} / {r.migrate.seconds:.2f} s ({r.migrate.seconds / r.manual.total.seconds:.2f}×)"
        for r in rounds
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = "; ".join(f"{k}: {v}" for k, v in machine_info(HERE, "docker-registry")[:3])
    return "\n".join(
        [
            "## Migration: `specman migrate` vs the manual pipeline",
            "",
            f"Run {when} by `benchmarks/migrate.py` ({machine}). The old SCAR: nginx (autoindex) serving "
            f"{files:,} files, {nbytes / MiB:,.0f} MiB; the target: a local `docker-registry`; both end served by "
            f"specman from it. {len(rounds)} rounds, each running both pipelines (the manual one first in rounds "
            "1, 3, …); times are medians over the rounds, peak RSS the largest.",
            "",
            "| pipeline | time | peak RSS | ratio | goal |",
            "|---|---|---|---|---|",
            f"| manual: `tar -czf` {stage['tar']:.2f} s + `sha256sum` {stage['sha']:.2f} s + `curl` push "
            f"{stage['push']:.2f} s + `specman sync --once` {stage['sync']:.2f} s | {manual_s:.2f} s | "
            f"{manual_rss:.0f} MiB | 1.00× | |",
            f"| `specman migrate` from the SCAR's URL, with the parity proof, the switch and both jobs | "
            f"{migrate_s:.2f} s | {migrate_rss:.0f} MiB | {ratio:.2f}× | time ≤ {TIME_GOAL}×: "
            f"{'met' if ratio <= TIME_GOAL else 'missed'}; RSS ≤ {RSS_GOAL:.0f} MiB: "
            f"{'met' if migrate_rss <= RSS_GOAL else 'missed'} |",
            "",
            f"Each round, manual / migrate: {per_round}. Phases of the median migration: {phases}. The push phase "
            "includes copying every file from nginx; the parity phase reads the SCAR again (unchanged files answer "
            "304 to the validators of the copy) and fetches every file from specman over HTTPS (`--processes` left "
            "at its default: one process). specman serve (one worker, its default; a fresh one each round, syncing "
            "that round's registry) is not in the migrate figure: it is a separate, long-running process, "
            "measured in the serve section.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
