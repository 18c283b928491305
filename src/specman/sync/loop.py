"""The sync loop: reconcile every ``interval``, back off exponentially with jitter after failures, stop on request.

A failure is a ``SyncError`` (the source could not be listed, publishing failed) or a result with failed tags.
After ``n`` failures in a row the next attempt waits ``min(cap, base * 2**(n-1))``, scaled by a random factor in
[0.5, 1] (jitter, so replicas do not retry in step); a failure no retry can fix (``retryable=False``, e.g.
wrong credentials) waits at least ``interval``.  After a success the loop waits ``interval``.  ``stop`` (a
``threading.Event``, set from a signal handler) ends the wait at once; a reconcile in progress runs to its end,
so the store is never left mid-publish by a clean stop.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from specman.errors import SyncError
from specman.sync.reconcile import SyncResult

__all__ = ["Backoff", "parse_duration", "run_loop"]

log = logging.getLogger("specman.sync")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base`` seconds after the first failure, doubling, at most ``cap``."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        if failures <= 0:
            return 0.0
        ceiling = min(self.cap, self.base * float(1 << min(failures - 1, 32)))
        return ceiling * (0.5 + 0.5 * rng())


_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``500ms`` or plain seconds → seconds (> 0); ValueError otherwise."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0.0
    if seconds <= 0:
        raise ValueError(f"{text.strip()!r} is not a positive duration (examples: 30s, 5m, 1h)")
    return seconds


def run_loop(
    reconcile: Callable[[], SyncResult],
    *,
    interval: float | Callable[[], float],
    stop: threading.Event,
    backoff: Backoff | None = None,
    on_result: Callable[[SyncResult | None, SyncError | None], None] | None = None,
    wake: threading.Event | None = None,
) -> int:
    """Call ``reconcile`` until ``stop`` is set; return the number of reconciles run.

    ``interval`` may be a function, asked after every reconcile.  ``on_result(result, error)`` sees every
    outcome (for status and metrics).  Setting ``wake`` (a registry notification) ends the wait at once, also a
    backoff: the next reconcile starts now, or right after the one in progress (several wakes during one
    reconcile make one more).  Whoever sets ``stop`` must set ``wake`` too.  Only ``SyncError`` is caught:
    anything else is a bug and ends the loop.
    """
    backoff = backoff or Backoff()
    failures = runs = 0
    while not stop.is_set():
        result: SyncResult | None = None
        error: SyncError | None = None
        try:
            result = reconcile()
        except SyncError as exc:
            error = exc
        runs += 1
        if on_result is not None:
            on_result(result, error)
        every = interval() if callable(interval) else interval  # a mounted ConfigMap may change it
        if error is None and result is not None and result.ok:
            failures, wait = 0, every
        else:
            failures += 1
            wait = backoff.delay(failures)
            if error is not None and not error.retryable:
                wait = max(wait, every)
            log.info("Next sync after a failure", extra={"fields": {"failures": failures, "wait": f"{wait:.1f}s"}})
        if wake is None:
            stop.wait(wait)
        elif wake.wait(wait):
            wake.clear()
    return runs
