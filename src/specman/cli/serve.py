"""``specman serve REPO --data-dir DIR``: the sync loop in a background thread, granian serving the data dir in front.

The command turns its settings into a ``specman.runtime.Supervisor`` (which owns the process: the data dir's
lock, the run directory shared with the workers, the threads, signals and the shutdown order) with two tasks:
the sync loop (``SyncService``: ``specman.sync.run_loop`` with its status file, metrics and notification
trigger) and the reader of notifications the workers accepted.  Each worker builds the app with
``specman.runtime.workers.serve_app``.  Secrets stay in their files (or the environment they came from): only
paths are passed on.

TLS: ``--tls-cert/--tls-key``, or a private CA and certificate generated into ``<data-dir>/tls`` (``ca.crt`` for
clients); ``--no-tls`` serves plain HTTP (behind a TLS-terminating proxy).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

import click

from specman.cli.options import LimitSettings, RegistrySettings, ServerSettings
from specman.cli.settings import file_opt, opt, uses
from specman.cli.signature import VerifySettings
from specman.cli.sync import Source, SyncSettings, configure_logging, interval_of, reconciler
from specman.errors import SyncError, UsageError
from specman.oci import RemoteRepository
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.runtime.granian import check_tls, parse_listen
from specman.runtime.rundir import RunDir
from specman.runtime.supervisor import Listener, Supervisor
from specman.runtime.workers import ServeWorkers
from specman.signature.policy import Verifier
from specman.store import Store
from specman.sync import SyncConfig, SyncResult, run_loop
from specman.sync.source import ConsoleSource
from specman.sync.status import SyncStatus
from specman.sync.trigger import Trigger

if TYPE_CHECKING:
    from specman.runtime.metrics import Metrics

__all__ = ["ServeSettings", "serve"]

log = logging.getLogger("specman.serve")
NOTIFY_TOKEN_ENV: Final = "SPECMAN_NOTIFY_TOKEN"  # noqa: S105 (a variable name, not a secret)


@dataclass(frozen=True)
class ServeSettings(ServerSettings):
    """``serve``'s server: the shared listen/TLS/workers options, Basic auth and the notification token."""

    param: ClassVar[str] = "server"

    basic_auth_file: Path | None = file_opt(
        "--basic-auth-file",
        help="Require HTTP Basic auth; the file holds one line 'user:password'.",
    )
    notify_token_file: Path | None = file_opt(
        "--notify-token-file",
        help="Accept registry notifications (POST /_specman/notify) with this bearer token "
        f"(or set {NOTIFY_TOKEN_ENV}).",
    )
    no_index_pages: bool = opt(
        "--no-index-pages",
        is_flag=True,
        help="Always answer a directory with its listing, even when it holds an index.html.",
    )

    def check(self) -> str | None:
        """Refuse bad settings before the data dir is touched; the name of the variable holding the notify token."""
        from specman.server.guards import read_basic_auth

        if self.basic_auth_file is not None:
            try:
                read_basic_auth(self.basic_auth_file)
            except (OSError, ValueError) as exc:
                raise UsageError(f"--basic-auth-file: {exc}") from None
        check_tls(self.no_tls, self.tls_cert, self.tls_key)
        return _notify_token(self.notify_token_file)

    def listener(self) -> Listener:
        host, port = parse_listen(self.listen)
        return Listener(host, port, self.workers, self.no_tls, self.tls_cert, self.tls_key, self.tls_sans, self.tls_min)


@dataclass
class SyncService:
    """The sync loop of ``serve`` as a supervisor task: each reconcile's outcome goes to the status file the
    workers read, to the metrics and to the notification trigger."""

    source: Source
    store: Store
    config: SyncConfig
    interval: float | Callable[[], float]
    status: SyncStatus
    wake: threading.Event
    verifier: Verifier | None = None

    def __post_init__(self) -> None:
        self.trigger = Trigger(self.wake, self.config.tag_filter)
        self.metrics: Metrics | None = None

    def prepare(self, run: RunDir, _tls: object) -> None:
        """In the main thread, before any task runs or worker is forked: the first status, the metrics files."""
        from specman.runtime.metrics import Metrics

        run.write_status(self.status)
        self.metrics = Metrics(run.metrics_dir)

    def run(self, run: RunDir, stop: threading.Event) -> None:
        metrics = self.metrics
        assert metrics is not None, "prepare() runs first"

        def on_result(result: SyncResult | None, error: SyncError | None) -> None:
            self.status.record(result, error, served_bytes=_served_bytes(self.store))
            run.write_status(self.status)
            metrics.record_sync(result, error)
            self.trigger.after_sync(result, error)

        reconcile = reconciler(self.source, self.store, self.config, self.verifier)
        run_loop(reconcile, interval=self.interval, stop=stop, wake=self.wake, on_result=on_result)

    def listen(self, run: RunDir, stop: threading.Event) -> None:
        """Hand the workers' notifications to the trigger (the reader is a daemon thread of its own)."""
        run.listen(self.trigger.notified)


@click.command()
@uses(SyncSettings, RegistrySettings, LimitSettings, ServeSettings, VerifySettings)
def serve(
    sync: SyncSettings, registry: RegistrySettings, limits: LimitSettings, server: ServeSettings, verify: VerifySettings
) -> None:
    """Sync REPO (or the console's registry) into DIR as 'specman sync' does, and serve DIR's merged view over HTTPS."""
    configure_logging(click.get_current_context())
    server.listener()  # a bad --listen is a usage error before anything else
    token_env = server.check()
    verifier = verify.verifier()
    source = sync.open_source(registry, long_running=True)
    try:
        store = Store(sync.data_dir)
        loop = SyncService(
            source,
            store,
            sync.config(limits),
            interval_of(source, sync),
            SyncStatus(source.display),
            threading.Event(),
            verifier,
        )
        supervisor = Supervisor(
            "serve",
            store.data_dir,
            server.listener(),
            factory="specman.runtime.workers:serve_app",
            workers_config=lambda _store: ServeWorkers(
                data_dir=str(store.data_dir.resolve()),
                source=source.display,
                repository=_notified_repository(source),
                basic_auth_file=str(server.basic_auth_file.resolve()) if server.basic_auth_file else None,
                notify_token_file=str(server.notify_token_file.resolve()) if server.notify_token_file else None,
                notify_token_env=token_env,
                index_pages=not server.no_index_pages,
            ),
            store=store,
            preload=("specman.server.app", "specman.server.guards", "specman.runtime.metrics"),
        )
        supervisor.task("notify", loop.listen)
        supervisor.task("sync", loop.run, wake=loop.wake.set)
        supervisor.run(on_ready=loop.prepare)
    finally:
        source.close()


def _served_bytes(store: Store) -> int | None:
    """The size of the tags the published generation holds (the status page's chart)."""
    try:
        generation = store.current()
    except Exception:  # a chart value is not worth a failed status write
        log.debug("Reading the current generation failed", exc_info=True)
        return None
    return sum(state.bytes for state in generation.tags.values()) if generation is not None else None


def _notify_token(token_file: Path | None) -> str | None:
    """Check the notification secret at start-up; the name of the environment variable holding it, if that."""
    if token_file is not None:
        try:
            if not token_file.read_text(encoding="utf-8").strip():
                raise UsageError(f"--notify-token-file {token_file} is empty")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --notify-token-file {token_file}: {exc}") from None
        return None
    return NOTIFY_TOKEN_ENV if os.environ.get(NOTIFY_TOKEN_ENV, "").strip() else None


def _notified_repository(source: Source) -> str | None:
    """The repository name registry notifications must carry (None: any — an OCI layout, or a config dir whose
    source may change; the tag filter still applies and an extra sync changes nothing)."""
    if isinstance(source, ConsoleSource):
        return DEFAULT_REPOSITORY  # the console names the registry; the repository is the product's
    return source.name if isinstance(source, RemoteRepository) else None
