"""The run directory of ``specman serve``: what its main process and its server workers share while it runs.

``specman serve`` is one main process (the sync loop, in a thread) and ``--workers`` granian processes (HTTP).
They share nothing in memory, so the main process creates a private directory (``RunDir.create``, mode 0700,
under ``$TMPDIR``; removed on exit) and passes its path to the workers in ``SPECMAN_SERVE_RUN_DIR``::

    <run>/app.json         how the workers build the app: data dir, source, auth and notify settings (no secret)
    <run>/sync.json        the sync loop's state (``SyncStatus``), replaced atomically after every reconcile
    <run>/notify.fifo      worker → main: one JSON line per accepted registry notification ([tag, action] pairs)
    <run>/metrics/         prometheus-client's multiprocess files (``specman.metrics``)

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from specman.errors import SyncError
from specman.files import atomic_write
from specman.sync.reconcile import SyncResult

__all__ = ["RUN_DIR_ENV", "AppConfig", "RunDir", "SyncStatus"]

RUN_DIR_ENV: Final = "SPECMAN_SERVE_RUN_DIR"
_LINE_MAX: Final = 4000  # below PIPE_BUF (4096): a write is atomic
HISTORY_MAX: Final = 30  # recent reconciles kept in ``SyncStatus.history`` (the status page's chart)

log = logging.getLogger("specman.serve")


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True)
class AppConfig:
    """What a server worker needs to build the app.  Paths only: secrets stay in their files."""

    data_dir: str
    source: str
    repository: str | None = None  # the registry repository notifications must name (None: an OCI layout)
    basic_auth_file: str | None = None
    notify_token_file: str | None = None
    notify_token_env: str | None = None  # the name of the environment variable holding the token
    index_pages: bool = True  # a directory's index.html answers for it (False: --no-index-pages)


@dataclass
class SyncStatus:
    """The sync loop's state as ``/_specman/status`` and ``/readyz`` show it."""

    source: str
    state: str = "pending"  # pending (no reconcile finished yet), ok, failing
    last_started: str | None = None
    last_finished: str | None = None
    last_duration: float | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    consecutive_failures: int = 0
    runs: int = 0
    failed_tags: dict[str, str] = field(default_factory=dict)
    # the last HISTORY_MAX reconciles, oldest first: {"finished", "duration", "ok", "downloaded", "served"}
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: SyncResult | None, error: SyncError | None, served_bytes: int | None = None) -> None:
        """Fold one reconcile's outcome in (what ``run_loop``'s ``on_result`` sees); ``served_bytes`` is the size
        of the published view afterwards."""
        if result is None and error is not None and isinstance(error.result, SyncResult):
            result = error.result  # when the failed reconcile started and how long it ran
        self._record(result, error)
        self.history.append(
            {
                "finished": self.last_finished,
                "duration": self.last_duration,
                "ok": self.state == "ok",
                "downloaded": result.bytes_downloaded if result is not None else 0,
                "served": served_bytes,
            }
        )
        del self.history[:-HISTORY_MAX]

    def _record(self, result: SyncResult | None, error: SyncError | None) -> None:
        self.runs += 1
        now = datetime.now(UTC)
        if result is not None:
            self.source = result.source  # with --console, the registry the console names now
            self.last_started, self.last_finished = _iso(result.started), _iso(result.finished)
            self.last_duration = round(result.duration, 3)
            self.failed_tags = dict(result.failed)
        else:  # failed before a reconcile could start (the console did not name a source)
            self.last_started = self.last_finished = _iso(now)
            self.last_duration = 0.0
        if error is None and result is not None and result.ok:
            self.state, self.last_success = "ok", self.last_finished
            self.last_error = self.last_error_reason = None
            self.consecutive_failures = 0
            return
        self.state = "failing"
        self.consecutive_failures += 1
        if error is not None:
            self.last_error, self.last_error_reason = str(error), error.reason
        elif result is not None:
            self.last_error = "; ".join(f"{tag}: {message}" for tag, message in sorted(result.failed.items()))
            self.last_error_reason = "TagsFailed"


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
    def create(cls, config: AppConfig, status: SyncStatus) -> Iterator[RunDir]:
        """A fresh run directory for one ``serve`` (exported in ``SPECMAN_SERVE_RUN_DIR``), removed afterwards."""
        run = cls(Path(tempfile.mkdtemp(prefix="specman-serve-")))
        try:
            run.metrics_dir.mkdir()
            os.mkfifo(run.fifo, 0o600)
            atomic_write(run.config_file, json.dumps(asdict(config)).encode(), mode=0o600, durable=False)
            run.write_status(status)
            os.environ[RUN_DIR_ENV] = str(run.path)
            yield run
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
            shutil.rmtree(run.path, ignore_errors=True)

    def write_status(self, status: SyncStatus) -> None:
        atomic_write(self.status_file, json.dumps(asdict(status)).encode(), mode=0o600, durable=False)

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
            raise RuntimeError(f"{RUN_DIR_ENV} is not set: the app is started by 'specman serve'")
        return cls(Path(value))

    def config(self) -> AppConfig:
        return AppConfig(**json.loads(self.config_file.read_text(encoding="utf-8")))

    def read_status(self) -> dict[str, Any] | None:
        """The last ``SyncStatus`` the main process wrote, as JSON; None if there is none (yet)."""
        try:
            data = json.loads(self.status_file.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

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
