"""Fixtures of the reliability and security suite (``tests/reliability``, issue 8).

Every case runs twice over: a short version in the default run and a long one marked ``reliability`` (deselected by
default, run by ``scripts/reliability``).  Each test reports what it did through the ``results`` fixture — one row
per case and scale (trials, held, failed, key figures) — and asserts only after reporting, so a failing trial
still shows up in the table.  Rows go to the JSON-lines file named by ``SPECMAN_RELIABILITY_RESULTS`` (the script
sets it; without it they are only printed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from tests.fixtures.certs import Certs
from tests.fixtures.registry import Registry, start_registry, stop_registry

RESULTS_ENV = "SPECMAN_RELIABILITY_RESULTS"
TRIALS_ENV = "SPECMAN_RELIABILITY_TRIALS"


@dataclass
class Result:
    """One row of ``docs/reliability.md``."""

    case: str
    scale: str = "short"
    trials: int = 0
    held: int = 0
    failed: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def trial(self, ok: bool, why: str = "") -> bool:
        """Count one trial; a failed one keeps ``why`` (the first few are shown in the table)."""
        self.trials += 1
        if ok:
            self.held += 1
        else:
            self.failed += 1
            self.failures.append(why)
        return ok

    def check(self) -> None:
        """Fail the test when a trial failed (call it last)."""
        assert self.failed == 0, f"{self.failed} of {self.trials} trials failed: {self.failures[:5]}"


Results = Any  # the ``results`` fixture: ``results(case, scale) -> Result``


@pytest.fixture
def results(request: pytest.FixtureRequest) -> Iterator[Results]:
    """``results("1. crash during sync", scale)`` -> a ``Result`` written out when the test ends."""
    made: list[Result] = []

    def make(case: str, scale: str = "short") -> Result:
        made.append(Result(case, scale))
        return made[-1]

    yield make
    path = os.environ.get(RESULTS_ENV)
    for row in made:
        line = json.dumps({**asdict(row), "failures": row.failures[:3], "test": request.node.nodeid})
        print(f"\nreliability result: {line}")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


@dataclass(frozen=True)
class Scale:
    """The size of one case's run: ``name`` is ``short`` (default run) or ``long`` (``-m reliability``)."""

    name: str
    trials: int
    size: int = 0
    seconds: float = 0.0


def scales(short: Scale, long: Scale) -> list[Any]:
    """Parametrize a case over its short and its long (``reliability``-marked) scale.

    ``SPECMAN_RELIABILITY_TRIALS=N`` caps the long scale's trials (a reduced run; the report shows the count).
    """
    cap = os.environ.get(TRIALS_ENV, "")
    if cap.isdigit() and int(cap) > 0:
        long = dataclasses.replace(long, trials=min(long.trials, int(cap)))
    return [pytest.param(short, id="short"), pytest.param(long, id="long", marks=pytest.mark.reliability)]


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """A plain registry of the test module alone: its cases stop it or corrupt its storage."""
    registry = start_registry(tmp_path_factory.mktemp("own-registry"), "plain", certs)
    try:
        yield registry
    finally:
        stop_registry(registry)
