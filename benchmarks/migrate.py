"""The migration benchmark: ``specman migrate`` from an nginx SCAR against the manual pipeline, in the same run.

    uv run --locked python benchmarks/migrate.py [--quick] [--work-dir benchmarks/.data] [--output docs/benchmarks.md]

The old SCAR is nginx (autoindex on) serving 10,000 files / 1 GiB of JSON-like text (``generate_tree`` with
``compressible=True``) plus the bundled sample manifests (their cloud type files make the console's jobs succeed).
Both pipelines end with the content served by ``specman`` from a local ``docker-registry``:

* **manual** — what the documentation has operators do, timed stage by stage: ``tar -czf`` of the directory,
  ``sha256sum``, the ``curl`` uploads (config, blob, manifest), then ``specman sync --once`` into a fresh data dir;
* **specman migrate** — from the SCAR's URL (it crawls nginx's listings and copies every file), preflight, pack,
  push, notification, wait until ``specman serve`` serves it, the parity proof (the SCAR read again with its
  validators, every file fetched from specman over HTTPS and hashed), the switch and both console jobs.

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
import sys
import time
from pathlib import Path

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
    args = parser.parse_args(argv)
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
        registry = start_registry(run_dir / "registry", "plain", certs)
        stops.append(lambda: stop_registry(registry))
        nginx = ScarNginx(run_dir / "nginx", scar_root).start()
        stops.append(nginx.stop)
        console = start_console(run_dir / "console")
        stops.append(console.stop)
        (run_dir / "pw").write_text(ADMIN_PASSWORD + "\n")
        (run_dir / "token").write_text("bench-notify-token\n")
        serve = start_serve(
            [f"{registry.host}/{NAME}", "--plain-http"],
            run_dir / "serve",
            extra_args=["--interval", "1h", "--notify-token-file", str(run_dir / "token")],
        )
        stops.append(serve.kill9)
        spec = specman_command()

        # the manual pipeline
        tgz = run_dir / "manifests.tgz"
        tar = run([["tar", "-czf", str(tgz), "-C", str(scar_root), "."]], log=run_dir / "tar.log", env=env)
        digest_out = run_dir / "digest"
        sha = run([["sha256sum", str(tgz)]], log=run_dir / "sha.log", stdout=digest_out, env=env)
        digest = "sha256:" + digest_out.read_text().split()[0]
        push = run(
            [["bash", "-c", _CURL_PUSH, "push", registry.url, "manual/manifest", str(tgz), digest]],
            log=run_dir / "curl.log",
            env=env,
        )
        sync = run(
            [
                [
                    *spec,
                    "sync",
                    f"{registry.host}/manual/manifest",
                    "--plain-http",
                    "--data-dir",
                    str(run_dir / "m"),
                    "--once",
                ]
            ],
            log=run_dir / "sync.log",
            env=env,
        )
        manual = tar + sha + push + sync
        log(
            f"manual: tar {tar.seconds:.2f} s, sha256 {sha.seconds:.2f} s, curl push {push.seconds:.2f} s, "
            f"sync {sync.seconds:.2f} s = {manual.seconds:.2f} s"
        )

        # specman migrate
        summary_file = run_dir / "summary.json"
        migrate = run(
            [
                [
                    *spec,
                    "migrate",
                    "--from",
                    nginx.url("/"),
                    "--to",
                    f"{registry.host}/{NAME}:0.0.0",
                    "--plain-http",
                    "--console",
                    console.base,
                    "--console-ca-file",
                    str(console.ca),
                    "--console-password-file",
                    str(run_dir / "pw"),
                    "--specman",
                    f"https://127.0.0.1:{serve.port}",
                    "--specman-ca-file",
                    str(serve.ca),
                    "--notify-token-file",
                    str(run_dir / "token"),
                    "--work-dir",
                    str(fresh_dir(run_dir / "migrate")),
                    "--yes",
                    "--json",
                    "--timeout",
                    "600",
                ]
            ],
            log=run_dir / "migrate.log",
            stdout=summary_file,
            env=env,
            timeout=1800,
        )
        summary = json.loads(summary_file.read_text())
        if not summary.get("ok") or not summary["parity"]["ok"]:
            raise RuntimeError(f"the migration did not succeed: {summary.get('error')}")
        log(f"migrate: {migrate.seconds:.2f} s, peak RSS {migrate.peak_rss_mib:.0f} MiB; {summary['durations']}")
        table = report(n_files, n_bytes, manual, migrate, (tar, sha, push, sync), summary)
        print(table)
        if output is not None:
            write_section(output, table, "migrate")
            log(f"wrote the migrate section of {output}")
        met = migrate.seconds <= TIME_GOAL * manual.seconds and migrate.peak_rss_mib <= RSS_GOAL
        return 0 if met or args.quick else 1  # the smoke run's tiny tree measures fixed costs, not the goal
    finally:
        for stop in reversed(stops):
            stop()  # type: ignore[operator]
        kill_running()
        shutil.rmtree(run_dir, ignore_errors=True)


def report(
    files: int,
    nbytes: int,
    manual: Measurement,
    migrate: Measurement,
    stages: tuple[Measurement, ...],
    summary: dict[str, object],
) -> str:
    ratio = migrate.seconds / manual.seconds
    tar, sha, push, sync = stages
    durations = summary["durations"]
    assert isinstance(durations, dict)
    helper_rss = summary.get("helperPeakRssMiB")
    helper = f" (+ {helper_rss:.0f} MiB per helper process)" if isinstance(helper_rss, float | int) else ""
    total_rss = migrate.peak_rss_mib + (float(helper_rss) if isinstance(helper_rss, float | int) else 0.0)
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in durations.items() if k != "total")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = "; ".join(f"{k}: {v}" for k, v in machine_info(HERE, "docker-registry")[:3])
    return "\n".join(
        [
            "## Migration: `specman migrate` vs the manual pipeline",
            "",
            f"Run {when} by `benchmarks/migrate.py` ({machine}). The old SCAR: nginx (autoindex) serving "
            f"{files:,} files, {nbytes / MiB:,.0f} MiB; the target: a local `docker-registry`; both end served by "
            "specman from it.",
            "",
            "| pipeline | time | peak RSS | ratio | goal |",
            "|---|---|---|---|---|",
            f"| manual: `tar -czf` {tar.seconds:.2f} s + `sha256sum` {sha.seconds:.2f} s + `curl` push "
            f"{push.seconds:.2f} s + `specman sync --once` {sync.seconds:.2f} s | {manual.seconds:.2f} s | "
            f"{manual.peak_rss_mib:.0f} MiB | 1.00× | |",
            f"| `specman migrate` from the SCAR's URL, with the parity proof, the switch and both jobs | "
            f"{migrate.seconds:.2f} s | {migrate.peak_rss_mib:.0f} MiB{helper} | {ratio:.2f}× | time ≤ {TIME_GOAL}×: "
            f"{'met' if ratio <= TIME_GOAL else 'missed'}; RSS ≤ {RSS_GOAL:.0f} MiB: "
            f"{'met' if migrate.peak_rss_mib <= RSS_GOAL else 'missed'}"
            f"{f' (with the helpers: {total_rss:.0f} MiB)' if helper else ''} |",
            "",
            f"Phases of the migration: {phases}. The push phase includes copying every file from nginx; the "
            "parity phase reads the SCAR again (unchanged files answer 304 to the validators of the copy) and "
            "fetches every file from specman over HTTPS (`--processes` left at its default: "
            f"{'one process and helpers, whose peak RSS is given apart' if helper else 'one process'}). "
            "specman serve (one worker, its default) is not in the migrate figure: it is a separate, long-running "
            "process, measured in the serve section.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
