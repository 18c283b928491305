"""The granian worker factories of specman's services, and the settings their main process hands them.

Both services configure their workers the same way: the main process writes a ``ServeWorkers`` or
``ConsoleWorkers`` into the run directory's ``app.json`` (``RunDir.create``; paths and settings, never a secret:
secrets stay in their files or the environment they came from), and granian calls ``serve_app`` or
``console_app`` in each worker, which reads it back and builds the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from specman.runtime.rundir import RunDir

__all__ = ["ConsoleWorkers", "ServeWorkers", "console_app", "serve_app"]


@dataclass(frozen=True)
class ServeWorkers:
    """What a ``specman serve`` worker needs to build the app."""

    data_dir: str
    source: str
    repository: str | None = None  # the registry repository notifications must name (None: an OCI layout)
    basic_auth_file: str | None = None
    notify_token_file: str | None = None
    notify_token_env: str | None = None  # the name of the environment variable holding the token
    index_pages: bool = True  # a directory's index.html answers for it (False: --no-index-pages)


@dataclass(frozen=True)
class ConsoleWorkers:
    """What a ``specman console`` worker needs to build the app."""

    data_dir: str
    database: str | None = None
    secret_key_file: str | None = None
    service_token_file: str | None = None
    token_ttl: float = 86400.0


def serve_app() -> ASGIApp:
    """Factory for ``specman serve``'s workers."""
    from specman.runtime.metrics import Metrics
    from specman.server.app import Service, create_app
    from specman.server.guards import read_basic_auth
    from specman.store import StoreReader

    run = RunDir.from_env()
    config = run.config(ServeWorkers)
    StoreReader(Path(config.data_dir)).drop_inherited_lock()  # forked with the main process's lock descriptor

    def sync_state() -> dict[str, Any] | None:
        status = run.read_status()
        return status.to_json() if status is not None else None

    service = Service(
        source=config.source,
        sync_state=sync_state,
        metrics=Metrics(run.metrics_dir),
        notify=run.notify,
        repository=config.repository,
        notify_token_file=config.notify_token_file,
        notify_token_env=config.notify_token_env,
    )
    auth = read_basic_auth(Path(config.basic_auth_file)) if config.basic_auth_file else None
    return create_app(Path(config.data_dir), basic_auth=auth, service=service, index_pages=config.index_pages)


def console_app() -> ASGIApp:
    """Factory for ``specman console``'s workers."""
    from specman.console.app import build_console, create_app
    from specman.console.auth import read_secret_file

    config = RunDir.from_env().config(ConsoleWorkers)
    console = build_console(
        Path(config.data_dir),
        database=config.database,
        secret_key_file=Path(config.secret_key_file) if config.secret_key_file else None,
        service_token=read_secret_file(Path(config.service_token_file)) if config.service_token_file else None,
        token_ttl=config.token_ttl,
    )
    return create_app(console)
