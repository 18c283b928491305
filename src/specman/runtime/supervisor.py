"""``Supervisor``: one object owns a service process (``serve``, ``console``) from start to stop.

It holds, in this order: the data directory's lock (``Store.open``: lock + recovery, for ``serve``), the TLS
material (given, or generated into ``<data-dir>/tls``), the run directory shared with the workers
(``RunDir``: their settings, the sync state, the notification FIFO, metrics), the stop signals (SIGTERM/SIGINT
caught by ``stop_on_signals`` until granian takes them over, re-sent by ``hand_over`` so none is lost), the
service's threads (the sync loop, the notification reader: ``task``), and granian with its workers and the
certificate watcher (``run_asgi``).  Shutdown runs in the reverse order, on every path: granian stops its workers
(in-flight requests finish), then the tasks are told to stop (``stop`` set, their ``wake`` called), a reconcile in
progress no longer retries and is waited for, the run directory is removed, and the lock is released.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from specman.oci.http import stop_retrying
from specman.runtime.granian import run_asgi, tls_files
from specman.runtime.rundir import RunDir
from specman.runtime.signals import hand_over, stop_on_signals
from specman.store import Store

__all__ = ["Listener", "Supervisor", "Task"]

log = logging.getLogger("specman.serve")

Task = Callable[[RunDir, threading.Event], None]  # runs until the event is set


@dataclass(frozen=True)
class Listener:
    """Where and how a service listens: address, worker processes, TLS choice."""

    host: str
    port: int
    workers: int = 1
    no_tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_sans: tuple[str, ...] = ()
    tls_min: str = "1.2"  # the lowest TLS version accepted ("1.2" or "1.3")


@dataclass
class Supervisor:
    """A service process: ``task`` its threads, then ``run`` until a signal (see the module docstring)."""

    service: str  # "serve" or "console": names the run directory
    data_dir: Path
    listener: Listener
    factory: str  # the workers' app factory, "module:function" (``specman.runtime.workers``)
    workers_config: Callable[[Store | None], object]  # what the workers read back (given the opened store)
    store: Store | None = None  # opened (locked) for the service's lifetime
    preload: tuple[str, ...] = ()  # modules the workers import (see ``_serve``)
    _tasks: list[tuple[str, Task, Callable[[], None] | None]] = field(default_factory=list)

    def task(self, name: str, target: Task, *, wake: Callable[[], None] | None = None) -> None:
        """Run ``target(run_dir, stop)`` in a thread while the service runs; ``wake`` interrupts its waits."""
        self._tasks.append((name, target, wake))

    def run(self, on_ready: Callable[[RunDir, tuple[Path, Path] | None], None] | None = None) -> None:
        """Open everything in order, serve until a signal, close everything in reverse order.
        ``on_ready(run_dir, tls)`` is called once both exist, in the main thread, before the tasks and the workers
        start (what the tasks share with the workers is made there, see ``_serve``)."""
        with ExitStack() as stack:
            if self.store is not None:
                stack.enter_context(self.store)
            tls = tls_files(
                self.data_dir,
                self.listener.no_tls,
                self.listener.tls_cert,
                self.listener.tls_key,
                self.listener.tls_sans,
            )
            run = stack.enter_context(RunDir.create(self.service, self.workers_config(self.store)))
            stop = stack.enter_context(stop_on_signals())
            if on_ready is not None:
                on_ready(run, tls)
            self._serve(run, stop, tls)

    def _serve(self, run: RunDir, stop: threading.Event, tls: tuple[Path, Path] | None) -> None:
        # granian forks the workers while the tasks' threads run; a module lock that a thread holds at that
        # instant (it is importing something) is never released in the child, whose import of the same module
        # then waits forever.  So everything the workers import is imported here first, before any thread runs.
        for module in (self.factory.partition(":")[0], *self.preload):
            importlib.import_module(module)
        threads = []
        for name, target, _ in self._tasks:
            thread = threading.Thread(target=target, args=(run, stop), name=f"specman-{name}", daemon=True)
            thread.start()
            threads.append(thread)
        served = threading.Event()
        threading.Thread(target=hand_over, args=(stop, served), name="specman-signals", daemon=True).start()
        try:
            if not stop.is_set():
                listener = self.listener
                run_asgi(
                    self.factory,
                    host=listener.host,
                    port=listener.port,
                    workers=listener.workers,
                    tls=tls,
                    tls_min=listener.tls_min,
                )
        finally:
            served.set()
            log.info("Stopping")
            stop_retrying()  # a reconcile in progress ends at its next failure, not after its back-offs
            stop.set()
            for _, _, wake in self._tasks:
                if wake is not None:
                    wake()
            for thread in threads:
                thread.join()
