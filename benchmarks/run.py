"""specman benchmarks against a local plain-http ``docker-registry``, all in one run.

    uv run --locked python benchmarks/run.py [--scale 1.0] [--repeat 3] [--work-dir benchmarks/.data]
                                             [--output docs/benchmarks.md] [--cache drop|evict|keep] [--clean]

Two 1 GiB datasets (65,536 x 16 KiB and 4 x 256 MiB random files, generated once and kept in the work dir) are
pushed by specman (pack + upload); then the same tgz blob is uploaded by ``specman push FILE``, a streamed
``curl`` PUT and oras-py, pulled and extracted by ``specman pull`` and ``curl | tar -xzf -``, and downloaded by
``specman pull --no-extract``, ``curl -o`` and oras-py. Each command runs ``--repeat`` times in its own process
(wall time and peak RSS from ``os.wait4``) after ``sync`` and a page-cache drop. Results go to stdout and to
``--output`` as Markdown. The registry and all temporary data are removed on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from procs import (
    CommandFailed,
    Measurement,
    MiB,
    PageCache,
    fresh_dir,
    interrupt,
    kill_running,
    log,
    remove_stale_runs,
    rotate,
    rss_floor_mib,
    rss_method,
    run,
    specman_command,
)
from report import (
    OP_PACK,
    OP_PULL,
    OP_PULLX,
    OP_PUSH,
    Row,
    goals_table,
    machine_info,
    markdown_table,
    notes,
    render_document,
    write_outside_serve_section,
)
from trees import Dataset, datasets, ensure_dataset, sha256_file, source_digest, tree_hash

if TYPE_CHECKING:
    from tests.fixtures.registry import Registry

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CURL = ["curl", "-sS", "-f", "--noproxy", "*"]
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class BenchError(RuntimeError):
    """The benchmark cannot go on (missing tool, wrong result)."""


@dataclass
class Bench:
    """Everything a measured run needs: the registry, the page-cache policy, the child environment."""

    run_dir: Path
    registry: Registry
    cache: PageCache
    repeat: int
    timeout: float
    env: dict[str, str]
    specman: list[str]
    http: httpx.Client
    counter: int = 0
    rows: list[Row] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.registry.url

    def repo(self, ds: Dataset, kind: str) -> str:
        """A repository name not used before in this run (so no blob is already linked to it)."""
        self.counter += 1
        return f"bench/{ds.name}/{kind}-{self.counter}"

    def ref(self, name: str) -> str:
        return f"{self.registry.host}/{name}:v1"

    def row(self, ds: Dataset, operation: str, tool: str, nbytes: int, baseline: str | None = None) -> Row:
        r = Row(ds.name, operation, tool, nbytes, baseline)
        self.rows.append(r)
        return r

    def measure(self, row: Row, stages: Sequence[Sequence[str]], stdout: Path | None = None) -> Measurement:
        m = run(stages, log=self.run_dir / "last-stderr.log", stdout=stdout, env=self.env, timeout=self.timeout)
        return self.record(row, m)

    def record(self, row: Row, m: Measurement) -> Measurement:
        row.runs.append(m)
        log(
            f"  {row.dataset:<11} {row.operation:<15} {row.tool:<22} #{len(row.runs)}: {m.seconds:7.2f} s "
            f"{row.nbytes / MiB / m.seconds:8.1f} MiB/s {m.peak_rss_mib:7.1f} MiB"
        )
        return m

    def layer(self, name: str) -> tuple[str, int]:
        """Digest and size of the single layer of ``name:v1``."""
        response = self.http.get(f"{self.url}/v2/{name}/manifests/v1", headers={"Accept": MANIFEST_TYPE})
        response.raise_for_status()
        layers = response.json()["layers"]
        if len(layers) != 1:
            raise BenchError(f"{name}:v1 has {len(layers)} layers, expected 1")
        return str(layers[0]["digest"]), int(layers[0]["size"])

    def check_blob(self, name: str, digest: str, size: int) -> None:
        response = self.http.head(f"{self.url}/v2/{name}/blobs/{digest}")
        if response.status_code != 200 or int(response.headers.get("content-length", -1)) != size:
            raise BenchError(f"blob {digest} not in {name} after the upload (HTTP {response.status_code})")

    def curl_put(self, row: Row, name: str, tgz: Path, digest: str) -> None:
        """POST an upload session, then one streamed monolithic PUT of ``tgz`` to its Location (both timed)."""
        headers = self.run_dir / "post-headers.txt"
        log_file = self.run_dir / "last-stderr.log"
        post = [*CURL, "-X", "POST", "-D", "-", "-o", "/dev/null", f"{self.url}/v2/{name}/blobs/uploads/"]
        m = run([post], log=log_file, stdout=headers, env=self.env, timeout=self.timeout)
        location = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in headers.read_text().splitlines()
                if ln.lower().startswith("location:")
            ),
            None,
        )
        if not location:
            raise BenchError(f"no Location in the answer to POST /v2/{name}/blobs/uploads/")
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        put = [*CURL, "-T", str(tgz), "-X", "PUT", f"{location}{sep}digest={digest}"]
        put += ["-H", "Content-Type: application/octet-stream", "-o", "/dev/null"]
        m = m + run([put], log=log_file, env=self.env, timeout=self.timeout)
        self.record(row, m)


def bench_dataset(b: Bench, ds: Dataset, src: Path, src_hash: str) -> None:
    log(f"== {ds.describe()}")
    spec, oras = b.specman, [sys.executable, str(HERE / "oras_worker.py")]
    host, scratch = b.registry.host, b.run_dir / "scratch"

    # 1. pack + push the directory (a fresh repository each time: nothing is skipped)
    pack = b.row(ds, OP_PACK, "specman", ds.nbytes)
    first = ""
    for _ in range(b.repeat):
        name = b.repo(ds, "pack")
        first = first or name
        b.cache.flush([src])
        b.measure(pack, [[*spec, "push", str(src), b.ref(name), "--plain-http"]])
    digest, size = b.layer(first)
    blob_url = f"{b.url}/v2/{first}/blobs/{digest}"

    # The tgz exactly as pushed, for the upload comparison
    run(
        [[*spec, "pull", b.ref(first), str(fresh_dir(scratch)), "--no-extract", "--plain-http"]],
        log=b.run_dir / "last-stderr.log",
        env=b.env,
        timeout=b.timeout,
    )
    tgz = b.run_dir / f"{ds.name}.tgz"
    (scratch / "manifests.tgz").replace(tgz)
    if sha256_file(tgz) != digest or tgz.stat().st_size != size:
        raise BenchError(f"the pulled tgz of {first} does not match its layer {digest}")

    # 2. upload the same tgz: specman push FILE vs a streamed curl PUT vs oras-py (fresh repository each time)
    up = {
        "specman": b.row(ds, OP_PUSH, "specman", size, "curl"),
        "curl": b.row(ds, OP_PUSH, "curl", size, "curl"),
        "oras-py": b.row(ds, OP_PUSH, "oras-py", size, "curl"),
    }
    for i in range(b.repeat):
        for tool in rotate(list(up), i):
            name = b.repo(ds, tool.replace("-", ""))
            b.cache.flush([tgz])
            if tool == "specman":
                b.measure(up[tool], [[*spec, "push", str(tgz), b.ref(name), "--plain-http"]])
            elif tool == "curl":
                b.curl_put(up[tool], name, tgz, digest)
            else:
                b.measure(up[tool], [[*oras, "push", host, b.ref(name), str(tgz)]])
            b.check_blob(name, digest, size)

    # 3. pull + extract: specman pull vs curl | tar -xzf - (empty destination, cold cache each time)
    px = {
        "specman": b.row(ds, OP_PULLX, "specman", ds.nbytes, "curl | tar"),
        "curl | tar": b.row(ds, OP_PULLX, "curl | tar", ds.nbytes, "curl | tar"),
    }
    dest = b.run_dir / "dest"
    for i in range(b.repeat):
        for tool in rotate(list(px), i):
            fresh_dir(dest)
            b.cache.flush([b.registry.storage_dir])
            if tool == "specman":
                b.measure(px[tool], [[*spec, "pull", b.ref(first), str(dest), "--plain-http"]])
            else:
                b.measure(px[tool], [[*CURL, blob_url], ["tar", "-xzf", "-", "-C", str(dest)]])
            if i == 0 and tree_hash(dest) != src_hash:
                raise BenchError(f"{tool}: the extracted tree differs from {src}")
    shutil.rmtree(dest, ignore_errors=True)

    # 4. download the tgz only: specman pull --no-extract vs curl -o vs oras-py pull
    dl = {
        "specman --no-extract": b.row(ds, OP_PULL, "specman --no-extract", size, "curl -o"),
        "curl -o": b.row(ds, OP_PULL, "curl -o", size, "curl -o"),
        "oras-py": b.row(ds, OP_PULL, "oras-py", size, "curl -o"),
    }
    for i in range(b.repeat):
        for tool in rotate(list(dl), i):
            out = fresh_dir(scratch)
            b.cache.flush([b.registry.storage_dir])
            if tool.startswith("specman"):
                b.measure(dl[tool], [[*spec, "pull", b.ref(first), str(out), "--no-extract", "--plain-http"]])
            elif tool == "curl -o":
                b.measure(dl[tool], [[*CURL, "-o", str(out / "manifests.tgz"), blob_url]])
            else:
                b.measure(dl[tool], [[*oras, "pull", host, b.ref(first), str(out)]])
            got = out / "manifests.tgz"
            if not got.is_file() or got.stat().st_size != size:
                raise BenchError(f"{tool}: no complete manifests.tgz after the download")
    shutil.rmtree(scratch, ignore_errors=True)
    tgz.unlink()


def startup_seconds(b: Bench) -> float:
    """Median wall time of ``specman --version`` (Python start and imports), page cache warm."""
    times = [run([[*b.specman, "--version"]], log=b.run_dir / "last-stderr.log", env=b.env).seconds for _ in range(3)]
    return statistics.median(times)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the datasets, e.g. 0.001 (default 1.0)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measured command (default 3)")
    parser.add_argument("--work-dir", type=Path, default=HERE / ".data", help="datasets and temporary data")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md", help="Markdown report")
    parser.add_argument(
        "--cache",
        choices=("drop", "evict", "keep"),
        default="drop",
        help="before each run: drop the page cache (root; falls back to evict), evict the inputs only, or keep it",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per command")
    parser.add_argument("--clean", action="store_true", help="delete the generated datasets on exit")
    parser.add_argument(
        "--datasets",
        default="small-files,large-files",
        help="comma-separated datasets to run (default: small-files,large-files)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1 or args.repeat < 1:
        parser.error("--scale must be in (0, 1] and --repeat at least 1")
    known = [ds.name for ds in datasets(1.0)]
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not args.datasets or set(args.datasets) - set(known):
        parser.error(f"--datasets: choose from {', '.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    missing = [t for t in ("docker-registry", "curl", "tar") if shutil.which(t) is None]
    if missing:
        log(f"error: missing {', '.join(missing)} (apt-get install docker-registry curl tar)")
        return 1
    work_dir: Path = args.work_dir.resolve()
    run_dir: Path | None = None
    registry: Registry | None = None
    started = time.monotonic()
    src_dir, src_before = source_digest()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_runs(work_dir)
        run_dir = work_dir / f"run-{os.getpid()}"
        fresh_dir(run_dir / "tmp")
        fresh_dir(run_dir / "docker-config")
        sets = [ds for ds in datasets(args.scale) if ds.name in args.datasets]
        sources = {ds.name: ensure_dataset(work_dir / "datasets", ds) for ds in sets}

        sys.path.insert(0, str(REPO))  # tests.fixtures lives in the repository, not in the package
        from tests.fixtures.registry import start_registry

        quiet_log: dict[str, Any] = {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}}
        registry = start_registry(run_dir / "registry", "plain", log_level="warn", extra_config={"log": quiet_log})
        env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV}
        env.update(TMPDIR=str(run_dir / "tmp"), DOCKER_CONFIG=str(run_dir / "docker-config"), NO_PROXY="*")
        with httpx.Client(trust_env=False, timeout=60.0) as http:
            b = Bench(run_dir, registry, PageCache(args.cache), args.repeat, args.timeout, env, specman_command(), http)
            startup = startup_seconds(b)
            for ds in sets:
                bench_dataset(b, ds, *sources[ds.name])
            check = b.cache.check(b.registry.storage_dir)
        elapsed = time.monotonic() - started
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        argv_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
        command = f"uv run --locked python benchmarks/run.py {argv_text}".strip()
        results, goals = markdown_table(b.rows), goals_table(b.rows)
        warnings = [] if args.scale == 1 else [f"Scaled run (--scale {args.scale}): not representative figures."]
        src_after = source_digest()[1]
        if src_after != src_before:
            warnings.append(
                f"specman's source ({src_dir}) changed while this ran ({src_before[:12]} -> {src_after[:12]}): "
                "the figures mix code versions."
            )
            log(f"warning: {warnings[-1]}")
        machine = [
            *machine_info(work_dir, "docker-registry"),
            ("specman source", f"`{src_dir}`, sha256 {src_after[:16]}"),
        ]
        doc = render_document(
            title="specman benchmarks",
            date=f"{date} (the whole run took {elapsed / 60:.1f} min)",
            command=command,
            machine=machine,
            datasets=[ds.describe() for ds in sets],
            results=results,
            goals=goals,
            notes=notes(
                repeat=args.repeat,
                rss=rss_method(),
                floor=rss_floor_mib(run_dir / "last-stderr.log"),
                cache=f"{b.cache.describe()} {check}".strip(),
                startup=startup,
            ),
            warning=" ".join(warnings) or None,
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_outside_serve_section(args.output, doc)  # serve.py's block stays
        print(f"{results}\n\n{goals}\n")
        log(f"wrote {args.output} ({elapsed / 60:.1f} min)")
        return 0
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    except (CommandFailed, BenchError, httpx.HTTPError, RuntimeError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_running()
        if registry is not None:
            from tests.fixtures.registry import stop_registry

            stop_registry(registry)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if args.clean:
            shutil.rmtree(work_dir / "datasets", ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
