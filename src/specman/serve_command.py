"""``specman serve REPO --data-dir DIR``: the sync loop in a background thread, granian serving the data dir in front.

The main process opens the store (lock + recovery), creates the run directory it shares with the workers
(``specman.runtime``: app settings, the sync state file, the notification FIFO, the metrics files), runs
``specman.sync.run_loop`` in a thread and granian in the foreground with ``--workers`` processes sharing the
port; each worker builds the app with ``specman.server.app.app_from_env``.  Secrets stay in their files (or the
environment they came from): only paths are passed on.  A registry notification accepted by a worker reaches
the main process through the FIFO and wakes the loop (if it names a tag the filter selects).  granian handles
SIGTERM/SIGINT (graceful: in-flight requests finish); when it returns the sync loop is stopped, a reconcile in
progress runs to its end, and the store is closed.

TLS: ``--tls-cert/--tls-key``, or a private CA and certificate generated into ``<data-dir>/tls`` (``ca.crt`` for
clients); ``--no-tls`` serves plain HTTP (behind a TLS-terminating proxy).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Final

import click

from specman.errors import SyncError, UsageError
from specman.oci import RemoteRepository
from specman.oci.http import stop_retrying
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.runtime import AppConfig, RunDir, SyncStatus
from specman.store import Store
from specman.sync import SyncResult, run_loop
from specman.sync.source import ConsoleSource
from specman.sync.trigger import Trigger
from specman.sync_command import Source, stop_on_signals, sync_options, sync_settings
from specman.web import check_tls, parse_listen, run_asgi, server_options, tls_files

__all__ = ["serve"]

log = logging.getLogger("specman.serve")
NOTIFY_TOKEN_ENV: Final = "SPECMAN_NOTIFY_TOKEN"  # noqa: S105 (a variable name, not a secret)


@click.command()
@sync_options
@server_options("0.0.0.0:8443", "Server processes sharing the port.")
@click.option(
    "--basic-auth-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_BASIC_AUTH_FILE",
    help="Require HTTP Basic auth; the file holds one line 'user:password'.",
)
@click.option(
    "--notify-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_NOTIFY_TOKEN_FILE",
    help=f"Accept registry notifications (POST /_specman/notify) with this bearer token (or set {NOTIFY_TOKEN_ENV}).",
)
@click.option(
    "--no-index-pages",
    is_flag=True,
    envvar="SPECMAN_NO_INDEX_PAGES",
    help="Always answer a directory with its listing, even when it holds an index.html.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    /,
    repo: str | None,
    data_dir: Path,
    tag_globs: tuple[str, ...],
    semver: str | None,
    keep_deleted: bool,
    parallel: int,
    interval: float,
    max_size: int | None,
    max_files: int | None,
    listen: str,
    no_tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_sans: tuple[str, ...],
    tls_min: str,
    workers: int,
    basic_auth_file: Path | None,
    notify_token_file: Path | None,
    no_index_pages: bool,
    **kw: Any,
) -> None:
    """Sync REPO (or the console's registry) into DIR as 'specman sync' does, and serve DIR's merged view over HTTPS."""
    # The server stack (granian, Starlette) loads only for this command: other commands start faster and smaller.
    from specman.metrics import Metrics
    from specman.server.guards import read_basic_auth

    host, port = parse_listen(listen)
    if basic_auth_file is not None:
        try:
            read_basic_auth(basic_auth_file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--basic-auth-file: {exc}") from None
    check_tls(no_tls, tls_cert, tls_key)  # before the data dir is touched
    token_env = _notify_token(notify_token_file)
    source, settings = sync_settings(
        ctx, repo, tag_globs, semver, keep_deleted, parallel, max_size, max_files, interval, kw, long_running=True
    )
    try:
        with Store(data_dir) as store:
            tls = tls_files(store.data_dir, no_tls, tls_cert, tls_key, tls_sans)
            config = AppConfig(
                data_dir=str(store.data_dir.resolve()),
                source=source.display,
                repository=_notified_repository(source),
                basic_auth_file=str(basic_auth_file.resolve()) if basic_auth_file else None,
                notify_token_file=str(notify_token_file.resolve()) if notify_token_file else None,
                notify_token_env=token_env,
                index_pages=not no_index_pages,
            )
            status = SyncStatus(source=source.display)
            # SIGTERM/SIGINT before granian takes the signals over (it does when it starts) stop cleanly too
            with RunDir.create(config, status) as run, stop_on_signals() as stop:
                metrics = Metrics(run.metrics_dir)
                wake = threading.Event()
                trigger = Trigger(wake, settings.tag_filter)

                def on_result(result: SyncResult | None, error: SyncError | None) -> None:
                    status.record(result, error, served_bytes=_served_bytes(store))
                    run.write_status(status)
                    metrics.record_sync(result, error)
                    trigger.after_sync(result, error)

                run.listen(trigger.notified)
                syncer = threading.Thread(
                    target=run_loop,
                    args=(settings.reconciler(source, store),),
                    kwargs={"interval": settings.interval, "stop": stop, "wake": wake, "on_result": on_result},
                    name="specman-sync",
                    daemon=True,
                )
                syncer.start()
                served = threading.Event()
                threading.Thread(target=_hand_over, args=(stop, served), name="specman-signals", daemon=True).start()
                try:
                    if not stop.is_set():
                        run_asgi(
                            "specman.server.app:app_from_env",
                            host=host,
                            port=port,
                            workers=workers,
                            tls=tls,
                            tls_min=tls_min,
                        )
                finally:
                    served.set()
                    log.info("Stopping")
                    stop_retrying()  # a reconcile in progress ends at its next failure, not after its back-offs
                    stop.set()
                    wake.set()
                    syncer.join()
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


def _hand_over(stop: threading.Event, served: threading.Event) -> None:
    """A signal our handler caught while granian was starting: send it again until granian's handler takes it."""
    stop.wait()
    while not served.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
        served.wait(0.5)


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
