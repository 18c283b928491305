"""Helpers shared by the reliability cases, on top of ``tests/test_serve_process.py``'s versions and view checks.

``Versions`` (A synced into a data dir, B pushed over it) and ``_check_served_view`` come from there; this module
adds a private registry per module (so a case may stop it), a reader that keeps requesting files while a case
injects faults, and small figures helpers.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.fixtures.serve import ServeProcess
from tests.test_serve_process import Files

__all__ = ["Reader", "percentile"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Reader:
    """A thread that GETs random paths of ``allowed`` (path -> the bodies it may have) until stopped, counting
    requests and every answer that is not 200 with one of the allowed bodies."""

    server: ServeProcess
    allowed: dict[str, set[bytes]]
    requests: int = 0
    bad: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def of_views(cls, server: ServeProcess, views: list[Files], sample: int = 50) -> Reader:
        common = sorted(set.intersection(*(set(v) for v in views)))
        paths = random.Random(len(common)).sample(common, min(sample, len(common)))
        return cls(server, {p: {v[p] for v in views} for p in paths})

    def _run(self) -> None:
        paths = sorted(self.allowed)
        rng = random.Random(1)
        with self.server.client(timeout=30.0) as client:
            while not self._stop.is_set():
                path = rng.choice(paths)
                try:
                    response = client.get("/" + path)
                    ok = response.status_code == 200 and response.content in self.allowed[path]
                    why = f"{path}: {response.status_code} {response.content[:40]!r}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{path}: {exc!r}"
                self.requests += 1
                if not ok:
                    self.bad.append(why)
                self._stop.wait(0.02)

    def __enter__(self) -> Reader:
        self._thread = threading.Thread(target=self._run, daemon=True, name="reader")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)


def wait_for(check: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check()`` until truthy or ``timeout`` (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(check())  # type: ignore[operator]
