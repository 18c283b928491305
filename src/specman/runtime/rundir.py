"""The run directory of a specman service: what its main process and its server workers share while it runs.

``specman serve`` and ``specman console`` are one main process (for serve: the sync loop, in a thread) and
``--workers`` granian processes (HTTP).  They share nothing in memory, so the main process creates a private
directory (``RunDir.create``, mode 0700, under ``$TMPDIR``; removed on exit) and passes its path to the workers in
``SPECMAN_RUN_DIR``; both services configure their workers the same way, through ``app.json``::

    <run>/app.json         how the workers build the app (``specman.runtime.workers``: paths and settings, no secret)
    <run>/sync.json        the sync loop's state (``SyncStatus``), replaced atomically after every reconcile
    <run>/notify.fifo      worker → main: one JSON line per accepted registry notification ([tag, action] pairs)
    <run>/metrics/         prometheus-client's multiprocess files (``specman.runtime.metrics``)

It holds runtime state only: the data directory keeps what must survive a restart.  A FIFO (not a socket) is
used because its path may be long and a write of less than ``PIPE_BUF`` bytes is atomic; the main process
opens it read-write, so a worker's non-blocking write never fails for want of a reader.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, TypeVar

from specman.files import atomic_write
from specman.sync.status import SyncStatus

__all__ = ["RUN_DIR_ENV", "RunDir"]

C = TypeVar("C")

RUN_DIR_ENV: Final = "SPECMAN_RUN_DIR"
_LINE_MAX: Final = 4000  # below PIPE_BUF (4096): a write is atomic

log = logging.getLogger("specman.serve")


@dataclass(frozen=True)
class RunDir:
    """The run directory's paths (see the module docstring)."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "app.json"

    @property
    def status_file(self) -> Path:
        return self.path / "sync.json"

    @property
    def fifo(self) -> Path:
        return self.path / "notify.fifo"

    @property
    def metrics_dir(self) -> Path:
        return self.path / "metrics"

    # -- main process ------------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def create(cls, service: str, config: object) -> Iterator[RunDir]:
        """A fresh run directory for one ``service`` process (exported in ``SPECMAN_RUN_DIR``), removed afterwards;
        ``config`` (a dataclass) is what its workers read back with ``config(type)``."""
        run = cls(Path(tempfile.mkdtemp(prefix=f"specman-{service}-")))
        try:
            run.metrics_dir.mkdir()
            os.mkfifo(run.fifo, 0o600)
            atomic_write(run.config_file, json.dumps(asdict(config)).encode(), mode=0o600, durable=False)  # type: ignore[call-overload]
            os.environ[RUN_DIR_ENV] = str(run.path)
            yield run
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
            shutil.rmtree(run.path, ignore_errors=True)

    def write_status(self, status: SyncStatus) -> None:
        status.save(self.status_file)

    def listen(self, on_events: Callable[[list[tuple[str, str]]], None]) -> threading.Thread:
        """Call ``on_events([(tag, action), ...])`` for every notification a worker forwards (in a daemon thread)."""
        fd = os.open(self.fifo, os.O_RDWR)

        def pump() -> None:
            with os.fdopen(fd, "rb", buffering=0) as fifo:
                buffered = b""
                while chunk := fifo.read(_LINE_MAX):
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        try:
                            events = [(str(tag), str(action)) for tag, action in json.loads(line)["events"]]
                        except (ValueError, KeyError, TypeError):
                            log.warning("Ignoring a malformed notify message from a worker")
                            continue
                        try:
                            on_events(events)
                        except Exception:  # a bug must not end the reader: notifications would stop for good
                            log.exception("Handling a notification failed")

        thread = threading.Thread(target=pump, name="specman-notify", daemon=True)
        thread.start()
        return thread

    # -- workers -----------------------------------------------------------------------------------------
    @classmethod
    def from_env(cls) -> RunDir:
        value = os.environ.get(RUN_DIR_ENV)
        if not value:
            raise RuntimeError(f"{RUN_DIR_ENV} is not set: the app is started by 'specman serve' or 'specman console'")
        return cls(Path(value))

    def config(self, kind: type[C]) -> C:
        """The workers' settings the main process wrote (``kind``: the dataclass it wrote)."""
        return kind(**json.loads(self.config_file.read_text(encoding="utf-8")))

    def read_status(self) -> SyncStatus | None:
        """The last ``SyncStatus`` the main process wrote; None if there is none (yet)."""
        return SyncStatus.load(self.status_file)

    def notify(self, events: list[tuple[str, str]]) -> bool:
        """Forward ``(tag, action)`` pairs to the main process; False if it cannot take more now (a sync is due)."""
        line = json.dumps({"events": events[:50]}).encode() + b"\n"
        if len(line) > _LINE_MAX:
            line = b'{"events": []}\n'  # huge tag names: a sync of everything is still right
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):
                return False
            raise
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return False
            os.write(fd, line)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True
