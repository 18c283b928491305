"""Case 1 — ``kill -9`` of ``specman serve`` at a random moment of a sync that replaces a large version.

Each trial copies a data dir serving version A, starts ``serve`` against the registry where B waits, kills it
(``SIGKILL`` to the main process alone or to its whole process group, alternately) at a moment drawn uniformly
over 2.5 times the measured length of that sync, then checks on disk and over HTTP:

* after a restart, start-up left no staging leftovers, no half swap, no version or generation without its record;
* the published tree is exactly A or exactly B — every file, every byte (none truncated, none of the other);
* the restarted server serves that view (a sample of paths, all of them in some trials);
* the next sync runs to its end and publishes B.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess, start_serve
from tests.reliability.conftest import Results, Scale, scales
from tests.test_serve_process import (
    Versions,
    _assert_clean,
    _assert_serves_all,
    _check_served_view,
    _copy_data,
    _make_versions,
    _read_tree,
    _source,
    _status,
    _unreachable,
)

WAIT = 180.0
WINDOW = 2.5
PHASES = ("Syncing with OCI repo", "Downloading", "Persisting", "Stored", "published generation", "Sync finished")


def _phase(log: str) -> str:
    """How far the killed sync got: the last phase marker in its log."""
    reached = [phase for phase in PHASES if phase in log]
    return reached[-1] if reached else "starting"


def _measure_sync(versions: Versions, work: Path) -> float:
    """Seconds from 'Syncing with OCI repo' to 'Sync finished' for A -> B (the window kills are drawn from)."""
    data = _copy_data(versions.data_a, work / "measure")
    server = start_serve(_source(versions.registry, versions.name), data, extra_args=["--interval", "1h"], wait=False)
    try:
        assert server.wait_log("Syncing with OCI repo", timeout=WAIT), server.log_tail()
        start = time.monotonic()
        assert server.wait_log("Sync finished", timeout=WAIT, interval=0.01), server.log_tail()
        return time.monotonic() - start
    finally:
        server.kill9()
        shutil.rmtree(data, ignore_errors=True)


def _kill(server: ServeProcess, alone: bool) -> None:
    if alone:
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(WAIT)
    server.kill9()  # the group: everything in odd trials, what the dead main process left in even ones


def _trial(versions: Versions, data: Path, rng: random.Random, window: float, number: int, full: bool) -> str:
    """One kill; returns the outcome ('A'/'B' and the phase); raises AssertionError when a check fails."""
    live = _source(versions.registry, versions.name)
    server = start_serve(live, data, extra_args=["--interval", "1h"], wait=False)
    try:
        assert server.wait_log("Syncing with OCI repo", timeout=WAIT), server.log_tail()
        time.sleep(rng.uniform(0.0, window))
    finally:
        _kill(server, alone=number % 2 == 0)
    phase = _phase(server.log_text())
    # restart against a source nobody answers for: what it serves is what the killed process left on disk
    checker = start_serve(_unreachable(), data, extra_args=["--interval", "1h"])
    try:
        _assert_clean(data)
        found = _read_tree(data / "current" / "tree")
        matching = [view.name for view in (versions.a, versions.b) if view.files == found]
        assert len(matching) == 1, f"trial {number} ({phase}): the published tree is no complete version"
        view = _check_served_view(checker, [versions.a, versions.b], rng, sample=200)
        if full:
            _assert_serves_all(checker, view.files)
    finally:
        checker.kill9()
    # the next sync runs to its end
    again = start_serve(live, data, extra_args=["--interval", "1h"])
    try:
        deadline = time.monotonic() + WAIT
        while _status(again)["tags"] != versions.b.tags:
            assert time.monotonic() < deadline, f"trial {number}: the sync after the restart did not finish"
            time.sleep(0.1)
        _assert_clean(data)
        assert _read_tree(data / "current" / "tree") == versions.b.files, f"trial {number}: B incomplete"
    finally:
        again.kill9()
    return f"{view.name} after {phase}"


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("scale", scales(Scale("short", 3, size=1000), Scale("long", 50, size=10_000)))
def test_kill9_during_sync(
    plain_registry: Registry, tmp_path_factory: pytest.TempPathFactory, results: Results, scale: Scale
) -> None:
    result = results("1. crash during sync (kill -9)", scale.name)
    work = tmp_path_factory.mktemp("crash")
    versions = _make_versions(plain_registry, work, scale.size)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    # kills are drawn over 2.5 times the measured sync: a sync started next to a starting server runs slower than
    # the measured one, and some kills must land on the swap itself and after it
    window = _measure_sync(versions, work) * WINDOW
    outcomes: Counter[str] = Counter()
    for number in range(1, scale.trials + 1):
        data = _copy_data(versions.data_a, work / f"data-{number}")
        try:
            full = number == 1 or number % 10 == 0
            outcome = _trial(versions, data, rng, window, number, full)
            outcomes[outcome.split(" ", 1)[0]] += 1
            outcomes[outcome.split(" after ", 1)[1]] += 1
            result.trial(True)
        except AssertionError as exc:
            result.trial(False, f"seed {seed} trial {number}: {str(exc)[:300]}")
        finally:
            shutil.rmtree(data, ignore_errors=True)
    result.figures = {
        "files": f"A {len(versions.a.files):,} → B {len(versions.b.files):,}",
        "sync length": f"{window / WINDOW:.1f} s",
        "after restart A/B": f"{outcomes['A']}/{outcomes['B']}",
        "killed during": ", ".join(f"{p} {outcomes[p]}" for p in ("starting", *PHASES) if outcomes[p]),
    }
    result.check()
