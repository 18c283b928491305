"""Case 2 — registry faults through a fault-injecting proxy between ``specman serve`` and the real registry.

Each trial starts ``serve`` on a data dir serving version A, pointed through a ``FaultProxy`` at a registry where
version B waits, injects one fault, and checks: a reader thread is served A or B (never an error, never a mixed
or truncated body) all along; the sync backs off and recovers to B once the fault is gone; downloads cut
mid-blob resume with ``Range``; ``Retry-After`` is honoured; a slow-loris reply is given up and retried; and a
blob whose bytes do not match its digest is never published.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.faultproxy import Fault, FaultProxy
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess, start_serve
from tests.reliability._common import Reader, wait_for
from tests.reliability.conftest import Result, Results, Scale, scales
from tests.test_serve_process import (
    Versions,
    _assert_clean,
    _check_served_view,
    _copy_data,
    _make_versions,
    _read_tree,
    _remote,
    _status,
)

BLOB = r"^GET /v2/.+/blobs/sha256:"
WAIT = 120.0


@pytest.fixture(scope="module")
def versions(own_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    return _make_versions(own_registry, tmp_path_factory.mktemp("faults-versions"), 600)


@dataclass
class Trial:
    """What a fault scenario gets: the proxy, the running server, its log, the layer digests and sizes of B."""

    proxy: FaultProxy
    registry: Registry
    versions: Versions
    layers: dict[str, int]  # B's layer digest -> size
    rng: random.Random
    server: ServeProcess | None = None
    during: Callable[[], None] | None = None  # run once the server is up (the default: clear the faults at once)
    notes: dict[str, Any] = field(default_factory=dict)
    long: bool = False


Scenario = Callable[[Trial], Callable[[], str]]  # arm the fault; returns the check run after recovery ("" = held)


def _blob_heads(proxy: FaultProxy) -> list[tuple[float, str]]:
    return [(t, h) for t, r, h in zip(proxy.times, proxy.requests, proxy.heads, strict=True) if re.search(BLOB, r)]


def cut_mid_blob(trial: Trial) -> Callable[[], str]:
    size = min(trial.layers.values())
    after = trial.rng.randrange(1, size)
    fault = trial.proxy.add_fault(Fault.cut(BLOB, after_bytes=after, body_only=True, times=2))

    def check() -> str:
        ranged = [h for _, h in _blob_heads(trial.proxy) if re.search(r"(?im)^range: bytes=[1-9]\d*-", h)]
        return "" if fault.hits == 2 and ranged else f"cut after {after}: hits {fault.hits}, {len(ranged)} Range GETs"

    return check


def server_errors(trial: Trial) -> Callable[[], str]:
    fault = trial.proxy.add_fault(Fault.respond(r"^(GET|HEAD) /v2/.+/(manifests|tags)/", status=500, times=4))
    return lambda: "" if fault.hits == 4 else f"500 served {fault.hits} times"


def too_many_requests(trial: Trial) -> Callable[[], str]:
    fault = trial.proxy.add_fault(Fault.respond(BLOB, status=429, headers={"Retry-After": "2"}, times=1))

    def check() -> str:
        blobs = _blob_heads(trial.proxy)
        first = next((i for i, (_, head) in enumerate(blobs) if fault.pattern.search(head)), None)
        line = blobs[first][1].split("\r\n", 1)[0] if first is not None else "?"
        again = [t for t, head in blobs[first + 1 :] if head.startswith(line)] if first is not None else []
        gap = again[0] - blobs[first][0] if again and first is not None else 0.0
        return "" if fault.hits == 1 and gap >= 1.9 else f"429 hits {fault.hits}, next blob GET after {gap:.2f} s"

    return check


def slow_loris(trial: Trial) -> Callable[[], str]:
    fault = trial.proxy.add_fault(Fault.trickle(BLOB, after_bytes=200, body_only=True, seconds=0.5, times=1))
    return lambda: "" if fault.hits == 1 else f"trickle hits {fault.hits}"


def slow_loris_manifest(trial: Trial) -> Callable[[], str]:
    fault = trial.proxy.add_fault(Fault.trickle(r"^GET /v2/.+/manifests/", after_bytes=5, seconds=0.5, times=1))
    return lambda: "" if fault.hits == 1 else f"trickle hits {fault.hits}"


def registry_stopped(trial: Trial) -> Callable[[], str]:
    """The registry goes away for a few seconds while a blob is half sent; the download resumes with Range."""
    size = min(trial.layers.values())
    stall = trial.proxy.add_fault(Fault.stall(BLOB, after_bytes=size // 2, body_only=True, seconds=1.0, times=1))
    downtime = trial.rng.uniform(2.0, 15.0) if trial.long else 4.0

    def during() -> None:
        assert wait_for(lambda: stall.hits >= 1, WAIT), "no blob download began"
        trial.registry.stop()
        time.sleep(downtime)
        trial.registry.start()

    trial.during = during

    def check() -> str:
        ranged = [h for _, h in _blob_heads(trial.proxy) if re.search(r"(?im)^range: bytes=[1-9]\d*-", h)]
        return "" if ranged else f"down {downtime:.1f} s: no Range GET after the registry came back"

    return check


def wrong_bytes(trial: Trial) -> Callable[[], str]:
    for digest, size in trial.layers.items():
        garbage = bytes(trial.rng.randrange(256) for _ in range(size))
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        pattern = rf"^GET /v2/.+/blobs/{re.escape(digest)}"
        trial.proxy.add_fault(Fault.respond(pattern, status=200, headers=headers, body=garbage, times=None))

    def during() -> None:
        server = trial.server
        assert server is not None
        trial.notes["mismatch logged"] = server.wait_log("digest mismatch", timeout=WAIT)
        # while the registry sends wrong bytes nothing of B is stored or published: the view is still A
        data = server.data_dir
        trial.notes["A kept"] = _status(server)["tags"] == trial.versions.a.tags and (
            _read_tree(data / "current" / "tree") == trial.versions.a.files
        )
        hexes = {d.split(":")[1] for d in trial.versions.b.tags.values()}
        trial.notes["B stored"] = [
            p.name for p in (data / "versions").iterdir() if p.name.split("sha256-")[-1] in hexes
        ]
        trial.proxy.clear_faults()

    trial.during = during

    def check() -> str:
        notes = trial.notes
        held = notes["mismatch logged"] and notes["A kept"] and not notes["B stored"]
        return "" if held else f"wrong bytes: {notes}"

    return check


SCENARIOS: dict[str, Scenario] = {
    "connection reset mid-blob": cut_mid_blob,
    "500 on manifests and tags": server_errors,
    "429 with Retry-After": too_many_requests,
    "slow-loris blob": slow_loris,
    "slow-loris manifest": slow_loris_manifest,
    "registry stopped mid-download": registry_stopped,
    "wrong blob bytes": wrong_bytes,
}

LONG_ONLY = {"slow-loris manifest"}  # the short run has the blob's slow-loris (each costs the 10 s low-speed window)


def _run_trial(name: str, versions: Versions, registry: Registry, work: Path, rng: random.Random, long: bool) -> str:
    """One scenario from A to B; "" when every check held, else why not."""
    repo = _remote(registry, versions.name)
    try:
        layers = {}
        for digest in versions.b.tags.values():
            layer = repo.fetch_manifest(digest).layers[0]
            layers[str(layer.digest)] = layer.size
    finally:
        repo.close()
    data = _copy_data(versions.data_a, work / "data")
    with FaultProxy("127.0.0.1", registry.port) as proxy:
        trial = Trial(proxy, registry, versions, layers, rng, long=long)
        scenario = SCENARIOS[name]
        check = scenario(trial)
        source = [f"{proxy.host}/{versions.name}", "--plain-http"]
        server = start_serve(source, data, extra_args=["--interval", "1s"])
        trial.server = server
        try:
            with Reader.of_views(server, [versions.a.files, versions.b.files]) as reader:
                if trial.during is not None:
                    trial.during()
                recovered = wait_for(lambda: _status(server)["tags"] == versions.b.tags, WAIT, 0.2)
            if not recovered:
                return f"no recovery to B: {server.log_tail(8)}"
            _assert_clean(data)
            if _check_served_view(server, [versions.a, versions.b], rng, sample=40) is not versions.b:
                return "the view after recovery is not B"
            if reader.bad or reader.requests == 0:
                return f"reader: {len(reader.bad)} bad of {reader.requests}: {reader.bad[:3]}"
            if "Traceback" in server.log_text():
                return "a traceback in the log"
            return check()
        finally:
            server.kill9()


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 5)))
def test_registry_faults(
    versions: Versions, own_registry: Registry, tmp_path: Path, results: Results, scale: Scale
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    rows: dict[str, Result] = {}
    seconds: dict[str, list[float]] = {name: [] for name in SCENARIOS}

    names = [n for n in SCENARIOS if scale.name == "long" or n not in LONG_ONLY]
    for name in names:
        rows[name] = results(f"2. registry faults: {name}", scale.name)
    for round_ in range(scale.trials):
        for name in names:
            work = tmp_path / f"{round_}-{uuid.uuid4().hex[:6]}"
            work.mkdir()
            start = time.monotonic()
            why = _run_trial(name, versions, own_registry, work, rng, scale.name == "long")
            seconds[name].append(time.monotonic() - start)
            rows[name].trial(not why, f"seed {seed}: {why}")
    for name, row in rows.items():
        row.figures = {"files": len(versions.b.files), "fault to recovery (max)": f"{max(seconds[name]):.1f} s"}
    for row in rows.values():
        row.check()
