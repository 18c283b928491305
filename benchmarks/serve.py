"""Serving benchmarks of ``specman serve``, each against a reference measured in the same run.

    uv run --locked python benchmarks/serve.py [--quick] [--work-dir benchmarks/.data] [--output docs/benchmarks.md]

1. Static files with ``wrk -t2 -c50``: a 4 KiB file (req/s) and a 100 MiB file (MiB/s), over TLS and plain HTTP,
   served by ``specman serve --workers 2`` (synced from an OCI layout) and by nginx (2 workers, sendfile, its own
   minimal config, specman's generated certificate) from the same published tree. Bytes are checked by sha256 first.
2. A no-op ``specman sync --once`` of 100 unchanged tags on a local ``docker-registry``: the reconcile time of the
   ``Sync finished`` line, the process wall time and the requests the registry's access log shows.
3. Push -> served with registry notifications (``POST /_specman/notify``): ``specman push`` of a new tag, then GET
   every 20 ms until the new content is served; the push's own time is the reference.
4. Peak memory of ``specman serve`` (main process and its workers, from /proc) while it syncs the 1 GiB datasets of
   ``trees.py``; ``specman sync --once`` of the same artifact is the reference.

``--quick`` shrinks everything (about 45 s, for the smoke test) and writes no report unless ``--output`` is given.
Without ``wrk``/``nginx`` it prints the ``apt-get install`` line and exits 2. Everything it starts is stopped on exit
(also on Ctrl-C or SIGTERM) and its temporary data removed; the generated datasets are kept in the work dir.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from procs import (
    CommandFailed,
    Measurement,
    MiB,
    fresh_dir,
    interrupt,
    kill_running,
    log,
    remove_stale_runs,
    rotate,
    run,
    specman_command,
)
from report import machine_info, write_serve_section
from serving import CpuShare, MemoryPeaks, Nginx, WrkResult, machine_load, registry_requests, run_wrk
from trees import datasets, ensure_dataset, source_digest, tree_hash

if TYPE_CHECKING:
    from tests.fixtures.registry import Registry
    from tests.fixtures.serve import ServeProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

KiB = 1 << 10
RSS_GOAL_MIB = 150.0
NOTIFY_GOAL_S = 2.0
NOOP_GOAL_S = 1.0
REQS_GOAL, REQS_STRETCH, BULK_GOAL = 0.25, 0.5, 0.8  # x nginx
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
TOOLS = {"wrk": "wrk", "nginx": "nginx-light", "docker-registry": "docker-registry"}


class BenchError(RuntimeError):
    """The benchmark cannot go on (wrong bytes served, a process that did not start, a missing log line)."""


@dataclass(frozen=True)
class Settings:
    quick: bool
    seconds: int  # wrk -d
    warmup: int  # a wrk run before each measured one (0: none)
    big_bytes: int  # the "100 MiB" file
    tags: int  # unchanged tags of the no-op sync
    pushes: int  # push -> served repetitions
    notify_wait: float  # seconds one push may take to be served before it counts as a timeout
    scale: float  # trees.datasets scale for the memory case
    threads: int = 2
    connections: int = 50

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 1, 0, 8 * MiB, 100, 3, 10.0, 0.001)
        return cls(False, 10, 2, 100 * MiB, 100, 10, 20.0, 1.0)


@dataclass
class Line:
    """One row of the results table."""

    case: str
    specman: str
    reference: str
    ratio: str
    goal: str
    met: str
    errors: str = "–"


@dataclass
class Bench:
    s: Settings
    run_dir: Path
    work_dir: Path
    env: dict[str, str]  # the whole environment of measured children
    extra_env: dict[str, str]  # what start_serve adds to the (scrubbed) environment
    spec: list[str]
    http: httpx.Client
    lines: list[Line] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cleanup: list[Callable[[], object]] = field(default_factory=list)
    registries: list[Registry] = field(default_factory=list)
    cpu: list[str] = field(default_factory=list)  # CPU use per case

    def live_pids(self) -> list[int]:
        """Processes started by the benchmark that are running now and not reaped by it (the registries)."""
        procs = [r.process.proc for r in self.registries if r.process is not None and r.process.running]
        return [p.pid for p in procs if p is not None]

    def run(self, argv: Sequence[str], name: str, timeout: float = 1800.0) -> Measurement:
        return run([list(argv)], log=self.run_dir / f"{name}.log", env=self.env, timeout=timeout)

    def serve(
        self, source: Sequence[str], data: Path, *, tls: bool, workers: int, extra: Sequence[str], wait: bool = True
    ) -> ServeProcess:
        from tests.fixtures.serve import start_serve

        sp = start_serve(
            source, data, tls=tls, workers=workers, extra_args=extra, env=self.extra_env, wait=wait, timeout=60.0
        )
        self.cleanup.append(sp.kill9)
        return sp

    def wait_ready(self, sp: ServeProcess, timeout: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (a generation is published)."""
        deadline = time.monotonic() + timeout
        with sp.client(timeout=5.0) as client:
            while True:
                try:
                    if client.get("/_specman/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if not sp.running or time.monotonic() > deadline:
                    raise BenchError(f"{sp.base}/readyz never answered 200; log tail:\n{sp.log_tail()}")
                time.sleep(0.05)

    def check_bytes(self, url: str, sha256: str, ca: Path | None) -> None:
        """GET ``url`` and compare the body's sha256 (TLS verified against ``ca``)."""
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else True
        digest = hashlib.sha256()
        with (
            httpx.Client(verify=verify, trust_env=False, timeout=60.0) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise BenchError(f"GET {url}: HTTP {response.status_code}")
            for chunk in response.iter_raw():
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise BenchError(f"GET {url}: sha256 {digest.hexdigest()[:16]}..., expected {sha256[:16]}...")


def _x(q: float) -> str:
    return f"{q:.2f}×"


def _write_random(path: Path, size: int, seed: int) -> str:
    """``size`` pseudo-random bytes (deterministic for ``seed``); returns their sha256 (hex)."""
    rng, digest, left = random.Random(seed), hashlib.sha256(), size
    with path.open("wb") as f:
        while left:
            chunk = rng.randbytes(min(MiB, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


_SINK_ERROR = re.compile(r"level=(error|warn).*(sink|endpoint|writing event)", re.IGNORECASE)
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def sync_finished(log_file: Path) -> dict[str, str]:
    """The fields of the last ``Sync finished`` line of a specman log (``duration`` without its ``s``)."""
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    line = next((ln for ln in reversed(text.splitlines()) if 'msg="Sync finished' in ln), None)
    if line is None:
        raise BenchError(f"no 'Sync finished' line in {log_file.name}:\n{text[-1500:]}")
    fields = {k: v.strip('"') for k, v in _FIELD.findall(line.split('msg="Sync finished', 1)[1])}
    fields["duration"] = fields.get("duration", "nan").rstrip("s")
    return fields


# -- 1. static files: specman serve vs nginx ----------------------------------------------------------------------
def _url(server: str, name: str, sp: ServeProcess, nginx: Nginx, tls: bool) -> str:
    return f"{sp.base}/{name}" if server == "specman" else nginx.url(f"/{name}", tls)


def bench_static(b: Bench) -> None:
    big_label = f"{b.s.big_bytes // MiB} MiB"
    src = fresh_dir(b.run_dir / "static-src")
    files = {"4 KiB": ("small-4k.bin", 4 * KiB), big_label: (f"large-{b.s.big_bytes // MiB}m.bin", b.s.big_bytes)}
    sums = {label: _write_random(src / name, size, seed=i) for i, (label, (name, size)) in enumerate(files.items())}
    layout = b.run_dir / "layout"
    b.run([*b.spec, "push", str(src), f"{layout}:0.0.0", "--oci-layout"], "push-layout")
    data = b.run_dir / "static-data"
    results: dict[tuple[str, bool, str], WrkResult] = {}
    nginx: Nginx | None = None
    try:
        for tls in (True, False):
            sp = b.serve([str(layout), "--oci-layout"], data, tls=tls, workers=2, extra=["--interval", "1h"])
            try:
                b.wait_ready(sp)
                if nginx is None:
                    tls_dir = data / "tls"
                    nginx = Nginx(
                        b.run_dir / "nginx", data / "current" / "tree", tls_dir / "server.crt", tls_dir / "server.key"
                    )
                    nginx.start()
                assert nginx is not None
                servers = ("specman", "nginx")
                for label, (name, _size) in files.items():
                    for server in servers:
                        url = _url(server, name, sp, nginx, tls)
                        b.check_bytes(url, sums[label], data / "tls" / "ca.crt" if tls else None)
                for i, (label, (name, _size)) in enumerate(files.items()):
                    timeout = 5 if label == "4 KiB" else 60
                    for server in rotate(list(servers), i + int(tls)):
                        url = _url(server, name, sp, nginx, tls)
                        for seconds in (b.s.warmup, b.s.seconds):
                            if seconds:
                                res = run_wrk(
                                    url,
                                    work=b.run_dir,
                                    threads=b.s.threads,
                                    connections=b.s.connections,
                                    seconds=seconds,
                                    request_timeout=timeout,
                                    env=b.env,
                                )
                        results[(server, tls, label)] = res
                        log(
                            f"  {label:>8} {'TLS' if tls else 'http'} {server:<7} {res.req_s:10,.0f} req/s "
                            f"{res.mib_s:9,.0f} MiB/s  p50 {res.latency_p50_ms:.1f} ms  errors: {res.describe_errors()}"
                        )
            finally:
                sp.stop()
    finally:
        if nginx is not None:
            nginx.stop()

    for label in files:
        for tls in (True, False):
            mine, ref = results[("specman", tls, label)], results[("nginx", tls, label)]
            proto = "TLS" if tls else "plain HTTP"
            errors = f"{mine.error_count} / {ref.error_count}"
            if label == "4 KiB":
                q = mine.req_s / ref.req_s
                met = "met (stretch too)" if q >= REQS_STRETCH else "met" if q >= REQS_GOAL else "MISSED"
                b.lines.append(
                    Line(
                        f"4 KiB file, {proto}, `wrk -t{b.s.threads} -c{b.s.connections} -d{b.s.seconds}s` (req/s)",
                        f"{mine.req_s:,.0f} req/s",
                        f"nginx {ref.req_s:,.0f} req/s",
                        _x(q),
                        f"≥ {REQS_GOAL}× nginx (stretch {REQS_STRETCH}×)",
                        met,
                        errors,
                    )
                )
            else:
                q = mine.mib_s / ref.mib_s
                b.lines.append(
                    Line(
                        f"{label} file, {proto}, `wrk -t{b.s.threads} -c{b.s.connections} -d{b.s.seconds}s` (MiB/s)",
                        f"{mine.mib_s:,.0f} MiB/s",
                        f"nginx {ref.mib_s:,.0f} MiB/s",
                        _x(q),
                        f"≥ {BULK_GOAL}× nginx",
                        "met" if q >= BULK_GOAL else "MISSED",
                        errors,
                    )
                )
    for (server, tls, label), r in results.items():
        b.details.append(
            f"wrk, {label}, {'TLS' if tls else 'plain'}, {server}: {r.requests:,} responses, "
            f"{r.nbytes / MiB:,.0f} MiB in {r.seconds:.2f} s; latency p50 {r.latency_p50_ms:.1f} ms, "
            f"p99 {r.latency_p99_ms:.1f} ms; errors: {r.describe_errors()}"
        )


# -- 2. no-op sync of 100 unchanged tags -----------------------------------------------------------------------------
def push_tags(b: Bench, registry: Registry, name: str, tags: Sequence[str]) -> float:
    """One small artifact per tag (a file unique to the tag, so digests differ), pushed in-process by specman's
    client; returns the seconds it took."""
    from specman.oci import RegistryClient, TLSOptions, push_artifact

    tree = fresh_dir(b.run_dir / "tags-src")
    (tree / "common.json").write_text('{"kind": "common"}\n')
    started = time.monotonic()
    with RegistryClient(registry.host, tls=TLSOptions(plain_http=True)) as client:
        repo = client.repository(name)
        for tag in tags:
            (tree / "tag.json").write_text(f'{{"tag": "{tag}"}}\n')
            push_artifact(repo, tree, tag, tmp_dir=b.run_dir / "tmp")
    return time.monotonic() - started


def request_floor(registry: Registry, name: str, repeat: int = 3) -> tuple[float, int]:
    """Median seconds of the requests a no-op reconcile cannot avoid, made by a bare httpx client over one
    connection: ``GET tags/list`` and one manifest ``HEAD`` per tag; and the number of tags."""
    times, count = [], 0
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(f"{registry.url}/v2/{name}/tags/list")
            response.raise_for_status()
            tags = response.json()["tags"]
            for tag in tags:
                client.head(f"{registry.url}/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
            times.append(time.perf_counter() - started)
            count = len(tags)
    return statistics.median(times), count


def bench_noop(b: Bench, registry: Registry) -> None:
    name, n = "bench/noop", b.s.tags
    pushed = push_tags(b, registry, name, [f"1.0.{i}" for i in range(n)])
    data = b.run_dir / "noop-data"
    argv = [*b.spec, "sync", f"{registry.host}/{name}", "--plain-http", "--data-dir", str(data), "--once"]
    offset = registry.log_file.stat().st_size
    fill = b.run(argv, "sync-fill", timeout=600)
    time.sleep(0.3)  # the registry writes its access log line after the answer
    fill_reqs = registry_requests(registry.log_file, offset, name)
    fill_fields = sync_finished(b.run_dir / "sync-fill.log")
    offset = registry.log_file.stat().st_size
    noop = b.run(argv, "sync-noop", timeout=600)
    time.sleep(0.3)
    reqs = registry_requests(registry.log_file, offset, name)
    fields = sync_finished(b.run_dir / "sync-noop.log")
    floor, listed = request_floor(registry, name)
    if listed != n or fields.get("tags") != str(n):
        raise BenchError(f"expected {n} tags, the registry lists {listed}, the sync saw {fields.get('tags')}")
    log(f"  no-op sync: {fields['duration']} s reconcile, {noop.seconds:.2f} s process, requests {dict(reqs)}")

    reconcile = float(fields["duration"])
    manifests = reqs["GET manifests"] + reqs["HEAD manifests"]
    fill_manifests = fill_reqs["GET manifests"] + fill_reqs["HEAD manifests"]
    b.lines += [
        Line(
            f"no-op `sync --once`, {n} unchanged tags: reconcile (`Sync finished duration=`)",
            f"{reconcile:.3f} s",
            f"{floor:.3f} s: bare httpx, `tags/list` + {n} manifest HEADs on one connection",
            _x(reconcile / floor),
            f"< {NOOP_GOAL_S:g} s",
            "met" if reconcile < NOOP_GOAL_S else "MISSED",
        ),
        Line(
            "no-op `sync --once`: process wall time (start-up included)",
            f"{noop.seconds:.2f} s (peak RSS {noop.peak_rss_mib:.0f} MiB)",
            f"first sync, filling the data dir: {fill.seconds:.2f} s",
            _x(noop.seconds / fill.seconds),
            "–",
            "–",
        ),
        Line(
            "no-op `sync --once`: manifest requests received by the registry",
            f"{manifests} (HEAD {reqs['HEAD manifests']}, GET {reqs['GET manifests']})",
            f"{n} tags",
            f"{manifests / n:.2f} per tag",
            "≤ 1 per tag",
            "met" if manifests <= n else "MISSED",
        ),
        Line(
            "no-op `sync --once`: tag-list requests",
            str(reqs["tags/list"]),
            f"first sync: {fill_reqs['tags/list']}",
            "–",
            "–",
            "–",
        ),
    ]
    b.details += [
        f"no-op sync: {n} tags pushed in {pushed:.1f} s (in-process, specman's client); every request specman made "
        f"in the no-op run: {_counts(reqs)}; its `Sync finished` fields: {_fields(fields)}.",
        f"first (filling) sync: {fill.seconds:.2f} s wall, peak RSS {fill.peak_rss_mib:.0f} MiB; requests: "
        f"{_counts(fill_reqs)} ({fill_manifests} manifest requests); `Sync finished` fields: {_fields(fill_fields)}.",
    ]


def _counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"


def _fields(f: dict[str, str]) -> str:
    keep = ("duration", "tags", "fetched", "skipped", "failed", "removed", "generation")
    return " ".join(f"{k}={f[k]}" for k in keep if k in f)


# -- 3. push -> served, with registry notifications -------------------------------------------------------------------
def notify_supported(b: Bench) -> bool:
    run([[*b.spec, "serve", "--help"]], log=b.run_dir / "serve-help.log", stdout=b.run_dir / "serve-help.txt")
    return "--notify-token-file" in (b.run_dir / "serve-help.txt").read_text()


def bench_notify(b: Bench) -> None:
    n = b.s.pushes
    case = f"registry push → new file served, notifications, {n} pushes"
    if not notify_supported(b):
        b.lines.append(Line(case, "not measured", "–", "–", f"< {NOTIFY_GOAL_S:g} s median", "not measured"))
        b.details.append(
            "push → served: NOT MEASURED: `specman serve --help` has no `--notify-token-file` in this build."
        )
        return
    from tests.fixtures.registry import start_registry, stop_registry

    registry = start_registry(b.run_dir / "registry-notify", "plain", log_level="info")
    b.registries.append(registry)
    b.cleanup.append(lambda: stop_registry(registry))
    name = "bench/notify"
    ref = f"{registry.host}/{name}"
    tree = fresh_dir(b.run_dir / "notify-src")
    (tree / "note.txt").write_text("first\n")
    b.run([*b.spec, "push", str(tree), f"{ref}:0.0.1", "--plain-http"], "push-notify")
    token = secrets.token_urlsafe(24)
    token_file = b.run_dir / "notify-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    extra = ["--interval", "1h", "--notify-token-file", str(token_file)]
    sp = b.serve([ref, "--plain-http"], b.run_dir / "notify-data", tls=False, workers=1, extra=extra)
    try:
        b.wait_ready(sp)
        assert registry.process is not None
        registry.process.config["notifications"] = {
            "endpoints": [
                {
                    "name": "specman",
                    "url": f"http://127.0.0.1:{sp.port}/_specman/notify",
                    "headers": {"Authorization": [f"Bearer {token}"]},
                    "timeout": "2s",
                    "threshold": 3,
                    "backoff": "1s",
                }
            ]
        }
        registry.restart()  # the same port and storage, now with the endpoint (its port was not known before)
        log_offset = registry.log_file.stat().st_size
        after, from_start, push_s, timeouts = [], [], [], 0
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            for i in range(n):
                content = f"push {i} {secrets.token_hex(16)}\n".encode()
                (tree / "note.txt").write_bytes(content)
                started = time.monotonic()
                pushed = b.run([*b.spec, "push", str(tree), f"{ref}:2.0.{i}", "--plain-http"], "push-notify")
                done = time.monotonic()
                served = None
                while time.monotonic() < done + b.s.notify_wait:
                    response = client.get(f"{sp.base}/note.txt")
                    if response.status_code == 200 and response.content == content:
                        served = time.monotonic()
                        break
                    time.sleep(0.02)
                push_s.append(pushed.seconds)
                if served is None:
                    timeouts += 1
                    log(f"  push {i + 1}/{n}: not served within {b.s.notify_wait:.0f} s")
                    continue
                after.append(served - done)
                from_start.append(served - started)
                log(f"  push {i + 1}/{n}: push {pushed.seconds:.2f} s, served {after[-1]:.2f} s after it returned")
                time.sleep(0.3)
    finally:
        sp.stop()
    registry_log = registry.log_file.read_bytes()[log_offset:].decode(errors="replace")
    notify_errors = sum(1 for ln in registry_log.splitlines() if _SINK_ERROR.search(ln))
    received = sp.log_text().count("Notification received")
    push_med = statistics.median(push_s)
    if after:
        med, worst = statistics.median(after), max(after)
        smed, sworst = statistics.median(from_start), max(from_start)
        b.lines += [
            Line(
                f"{case}: from the push's completion to the new file served (median / max)",
                f"{med:.2f} s / {worst:.2f} s",
                f"the push itself: median {push_med:.2f} s",
                "–",
                f"< {NOTIFY_GOAL_S:g} s median",
                "met" if med < NOTIFY_GOAL_S and not timeouts else "MISSED",
                f"{timeouts} not served",
            ),
            Line(
                f"{case}: from the push's start to the new file served (median / max)",
                f"{smed:.2f} s / {sworst:.2f} s",
                f"the push itself: median {push_med:.2f} s, max {max(push_s):.2f} s",
                _x(smed / push_med),
                "–",
                "–",
            ),
        ]
    else:
        b.lines.append(Line(case, "never served", f"push {push_med:.2f} s", "–", "< 2 s", "MISSED", f"{n} timeouts"))
    b.details.append(
        f"push → served: per push, seconds from completion: {' '.join(f'{x:.2f}' for x in after) or '–'}; "
        f"push times: {' '.join(f'{x:.2f}' for x in push_s)}; {timeouts} pushes not served within "
        f"{b.s.notify_wait:.0f} s; serve logged `Notification received` {received} times; registry log lines about "
        f"failed notification deliveries: {notify_errors}."
    )


# -- 4. peak memory of serve while it syncs 1 GiB ---------------------------------------------------------------------
def bench_memory(b: Bench, registry: Registry) -> None:
    store = b.work_dir / ("datasets" if b.s.scale == 1 else f"datasets-scale-{b.s.scale:g}")
    for ds in datasets(b.s.scale):
        src, src_hash = ensure_dataset(store, ds)
        name = f"bench/rss-{ds.name}"
        ref = f"{registry.host}/{name}"
        pushed = b.run([*b.spec, "push", str(src), f"{ref}:1.0.0", "--plain-http"], "push-rss")
        reference_dir = b.run_dir / f"rss-sync-{ds.name}"
        alone = b.run([*b.spec, "sync", ref, "--plain-http", "--data-dir", str(reference_dir), "--once"], "sync-rss")
        shutil.rmtree(reference_dir, ignore_errors=True)

        data = b.run_dir / f"rss-serve-{ds.name}"
        sp = b.serve([ref, "--plain-http"], data, tls=True, workers=2, extra=["--interval", "1h"], wait=False)
        peaks = MemoryPeaks(sp.pid)
        started = time.monotonic()
        try:
            while True:
                peaks.sample()
                text = sp.log_text()
                if 'msg="Sync finished' in text:
                    break
                if not sp.running:
                    raise BenchError(f"specman serve exited with {sp.proc.returncode}:\n{sp.log_tail()}")
                if time.monotonic() - started > 900:
                    raise BenchError(f"specman serve did not finish syncing in 900 s:\n{sp.log_tail()}")
                time.sleep(0.05)
            for _ in range(10):  # the workers may still be starting
                peaks.sample()
                time.sleep(0.05)
            b.wait_ready(sp)
            fields = sync_finished(sp.log_file)
            if fields.get("failed") != "0" or tree_hash(data / "current" / "tree") != src_hash:
                raise BenchError(f"serve's published tree differs from {src} ({_fields(fields)})")
        finally:
            sp.stop()
        shutil.rmtree(data, ignore_errors=True)
        log(
            f"  {ds.name}: serve main {peaks.main_mib:.0f} MiB, sum RSS {peaks.sum_rss_mib:.0f} MiB, "
            f"sum PSS {peaks.sum_pss_mib:.0f} MiB; sync --once alone {alone.peak_rss_mib:.0f} MiB"
        )
        size = f"{ds.nbytes / MiB:,.0f} MiB"
        b.lines += [
            Line(
                f"peak RSS of `specman serve --workers 2` syncing `{ds.name}` ({size}): main process (VmHWM)",
                f"{peaks.main_mib:.0f} MiB",
                f"`specman sync --once` alone: {alone.peak_rss_mib:.0f} MiB",
                _x(peaks.main_mib / alone.peak_rss_mib),
                f"≤ {RSS_GOAL_MIB:g} MiB",
                "met" if peaks.main_mib <= RSS_GOAL_MIB else "MISSED",
            ),
            Line(
                f"the same, main + {peaks.most_processes - 1} workers: peak Σ RSS / Σ PSS",
                f"{peaks.sum_rss_mib:.0f} / {peaks.sum_pss_mib:.0f} MiB",
                "–",
                "–",
                "–",
                "–",
            ),
        ]
        b.details.append(
            f"memory, `{ds.name}`: {peaks.samples} samples every 50 ms during {time.monotonic() - started:.1f} s; "
            f"main VmHWM {peaks.main_mib:.1f} MiB; Σ VmHWM over {len(peaks.hwm_by_pid)} processes "
            f"{peaks.sum_hwm_mib:.0f} MiB (upper bound); serve's `Sync finished`: {_fields(fields)}; the push took "
            f"{pushed.seconds:.1f} s, `sync --once` alone {alone.seconds:.1f} s."
        )


# -- the report -------------------------------------------------------------------------------------------------------
def results_table(lines: Sequence[Line]) -> str:
    out = [
        "| case | specman | reference | ratio | goal | met? | errors (specman / reference) |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for ln in lines:
        cells = (ln.case, ln.specman, ln.reference, ln.ratio, ln.goal, ln.met, ln.errors)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


def _version(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    out = (done.stdout + done.stderr).strip().splitlines()
    return out[0] if out else "?"


def machine(work_dir: Path, src: str) -> list[tuple[str, str]]:
    keep = ("CPUs", "CPU model", "memory", "work dir", "kernel", "Python", "specman", "docker-registry")
    rows = [(k, v) for k, v in machine_info(work_dir, "docker-registry") if k.startswith(keep)]
    try:
        granian = metadata.version("granian")
    except metadata.PackageNotFoundError:
        granian = "?"
    return [
        *rows,
        ("specman source", src),
        ("granian", granian),
        ("nginx", _version(["nginx", "-v"])),
        ("wrk", " ".join(_version(["wrk", "-v"]).split()[:3])),
    ]


def notes(s: Settings) -> list[str]:
    return [
        "*ratio* is specman's figure divided by the reference's. Every process (wrk, both servers, the registry) "
        "runs on the same 2 CPUs: wrk's two threads take CPU time from the server it measures, so absolute figures "
        "are lower than on a separate client machine, for nginx and specman alike. Other people's work on the "
        "machine is measured, not prevented (*CPU use* in the details, as shares of the time of all CPUs): "
        "*other processes* is the busy time in /proc/stat minus the CPU time of the benchmark, everything it "
        "started and the children those reaped.",
        f"Static files: the tree (a 4 KiB and a {s.big_bytes // MiB} MiB file of random bytes) is pushed to an OCI "
        "layout and synced by `specman serve LAYOUT --oci-layout --workers 2 --interval 1h` (TLS with its generated "
        "certificate, then `--no-tls`, one after the other on the same data dir); nginx (2 workers, `sendfile on`, "
        "`access_log off`, specman's `server.crt`/`server.key`) serves the same `DATA/current/tree`. Each server's "
        "bytes are compared by sha256 before it is measured; wrk does not verify certificates. "
        + (f"Each measured run is preceded by a {s.warmup} s wrk warm-up. " if s.warmup else "")
        + "*errors* sums wrk's connect/read/write/timeout errors and responses ≥ 400 (the details list each kind). "
        "The request timeout is 5 s for the small file, 60 s for the large one (50 concurrent downloads).",
        "No-op sync: the tags (each with a file of its own, so every digest differs) are pushed with specman's "
        "client, then `specman sync REPO --plain-http --data-dir D --once` runs twice; the second run is measured. "
        "Requests are counted in the registry's access log (specman's user agent only); the reference is a bare "
        "httpx client doing the requests no reconcile can skip (median of 3, warm).",
        "Push → served: the registry (plain http) notifies `POST /_specman/notify` of a plain-HTTP "
        "`specman serve --interval 1h --notify-token-file F` (so only a notification can trigger the sync); each "
        "push is a new tag whose tree changes `note.txt`, polled with GET every 20 ms. The reference (the default "
        "`--interval 30s` without notifications is not worth waiting for) is the push's own wall time, Python "
        "start-up included.",
        "Memory: `specman serve REPO --plain-http --workers 2` (TLS on) starts on an empty data dir; VmHWM/VmRSS "
        "(/proc/PID/status) and Pss (/proc/PID/smaps_rollup) of the main process (the sync runs in its thread) and "
        "of every descendant are sampled every 50 ms until the log says `Sync finished`; the published tree is then "
        "compared with the dataset. RSS counts pages shared between the forked workers and the main process once per "
        "process; PSS splits them. The reference is the peak RSS of `specman sync --once` of the same artifact "
        "(GNU time). The page cache is not dropped in these benchmarks.",
    ]


def render(
    b: Bench, *, date: str, elapsed: float, command: str, load: tuple[str, str], src: str, warnings: list[str]
) -> str:
    parts = ["## Serving benchmarks (`benchmarks/serve.py`)", ""]
    parts += [f"> **{w}**\n" for w in warnings]
    parts += [f"Measured {date} (the whole run took {elapsed / 60:.1f} min) with:", "", "```sh", command, "```", ""]
    parts += [f"Machine load at the start: {load[0]}; at the end: {load[1]}.", ""]
    parts += [results_table(b.lines), "", "### Details", ""] + [f"- {d}" for d in b.details]
    parts += [f"- CPU use, {c}." for c in b.cpu]
    parts += ["", "### Machine", "", "| | |", "|---|---|"]
    parts += ["| " + k + " | " + v.replace("|", "\\|") + " |" for k, v in machine(b.work_dir, src)]
    parts += ["", "### Notes", ""] + [f"- {n}" for n in notes(b.s)]
    return "\n".join(parts) + "\n"


CASES: tuple[tuple[str, str], ...] = (
    ("static", "1. static files, specman serve vs nginx"),
    ("noop", "2. no-op sync of unchanged tags"),
    ("notify", "3. registry push -> file served, with notifications"),
    ("memory", "4. peak memory of serve while syncing"),
)


# -- main -------------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 1 s wrk runs (smoke test, < 60 s)")
    parser.add_argument("--work-dir", type=Path, default=HERE / ".data", help="datasets and temporary data")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown file whose serve section is replaced (default docs/benchmarks.md; none with --quick)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(key for key, _ in CASES),
        help=f"comma-separated cases to run (default: all of {', '.join(key for key, _ in CASES)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary run directory (logs) for debugging")
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not args.cases or set(args.cases) - {key for key, _ in CASES}:
        parser.error(f"--cases: choose from {', '.join(key for key, _ in CASES)}")
    if args.output is None and not args.quick:
        args.output = REPO / "docs" / "benchmarks.md"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install -y {' '.join(TOOLS[t] for t in missing)}")
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    sys.path.insert(0, str(REPO))  # tests.fixtures (the registry and serve launchers) lives in the repository
    from tests.fixtures.registry import RegistryError, start_registry, stop_registry
    from tests.fixtures.serve import ServeError

    s = Settings.make(args.quick)
    work_dir: Path = args.work_dir.resolve()
    run_dir: Path | None = None
    b: Bench | None = None
    started = time.monotonic()
    src_dir, src_before = source_digest()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_runs(work_dir)
        run_dir = work_dir / f"run-{os.getpid()}"
        fresh_dir(run_dir / "tmp")
        fresh_dir(run_dir / "docker-config")
        load_start = machine_load()
        log(f"machine: {load_start}")
        extra_env = {"TMPDIR": str(run_dir / "tmp"), "DOCKER_CONFIG": str(run_dir / "docker-config")}
        env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV}
        env.update(extra_env, NO_PROXY="*")
        with httpx.Client(trust_env=False, timeout=30.0) as http:
            b = Bench(s, run_dir, work_dir, env, extra_env, specman_command(), http)
            registry = start_registry(run_dir / "registry", "plain", log_level="info")
            b.registries.append(registry)
            b.cleanup.append(lambda: stop_registry(registry))
            whole = CpuShare(b.live_pids).start()
            for key, title in CASES:
                if key not in args.cases:
                    continue
                log(f"== {title}")
                case_started, share = time.monotonic(), CpuShare(b.live_pids).start()
                try:
                    if key == "static":
                        bench_static(b)
                    elif key == "noop":
                        bench_noop(b, registry)
                    elif key == "notify":
                        bench_notify(b)
                    else:
                        bench_memory(b, registry)
                except (CommandFailed, BenchError, ServeError, RegistryError, httpx.HTTPError, RuntimeError) as exc:
                    message = f"{title}: FAILED: {exc}"
                    log(f"error: {message}")
                    b.failures.append(message)
                    b.lines.append(Line(title, "FAILED", "–", "–", "–", "FAILED"))
                finally:
                    kill_running()
                    took = f"{title}: {time.monotonic() - case_started:.0f} s, {share.stop().describe()}"
                    b.cpu.append(took)
                    log(f"   ({took})")
            whole.stop()
        load_end = f"{machine_load()}; during the whole run: {whole.describe()}"
        elapsed = time.monotonic() - started
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        command = f"uv run --locked python benchmarks/serve.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
        warnings = ["Quick run (--quick): tiny sizes and 1 s runs, not representative figures."] if s.quick else []
        src_after = source_digest()[1]
        if src_after != src_before:
            warnings.append(
                f"specman's source ({src_dir}) changed while this ran ({src_before[:12]} -> {src_after[:12]}): "
                "the figures mix code versions."
            )
        warnings += [f"Failed: {f.splitlines()[0]}" for f in b.failures]
        doc = render(
            b,
            date=date,
            elapsed=elapsed,
            command=command.strip(),
            load=(load_start, load_end),
            src=f"`{src_dir}`, sha256 {src_after[:16]}",
            warnings=warnings,
        )
        print(f"{results_table(b.lines)}\n")
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            write_serve_section(args.output, doc)
            log(f"wrote the serve section of {args.output} ({elapsed / 60:.1f} min)")
        for f in b.failures:
            log(f"error: {f}")
        return 1 if b.failures else 0
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    except (CommandFailed, BenchError, ServeError, RegistryError, httpx.HTTPError, RuntimeError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_running()
        for stop in reversed(b.cleanup if b is not None else []):
            try:
                stop()
            except Exception as exc:  # cleanup goes on
                log(f"warning: cleanup: {exc}")
        if run_dir is not None and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif run_dir is not None:
            log(f"kept {run_dir}")
        signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
