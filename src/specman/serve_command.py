"""``specman serve REPO --data-dir DIR``: the sync loop in a background thread, granian serving the data dir in front.

The parent process opens the store (lock + recovery), runs ``specman.sync.run_loop`` in a thread and granian in
the foreground with ``--workers`` processes sharing the port; each worker builds the app with
``specman.server.app.app_from_env`` (the data dir and the Basic auth file are passed in the environment, never a
password).  granian handles SIGTERM/SIGINT (graceful: in-flight requests finish); when it returns the sync loop is
stopped, a reconcile in progress runs to its end, and the store is closed.

TLS: ``--tls-cert/--tls-key``, or a private CA and certificate generated into ``<data-dir>/tls`` (``ca.crt`` for
clients); ``--no-tls`` serves plain HTTP (behind a TLS-terminating proxy).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import click

from specman.errors import UsageError
from specman.store import Store
from specman.sync import run_loop
from specman.sync_command import sync_options, sync_settings
from specman.web import parse_listen, run_asgi, tls_files

__all__ = ["serve"]

log = logging.getLogger("specman.serve")


@click.command()
@sync_options
@click.option(
    "--listen", default="0.0.0.0:8443", show_default=True, envvar="SPECMAN_LISTEN", help="Address to serve on."
)
@click.option("--no-tls", is_flag=True, envvar="SPECMAN_NO_TLS", help="Serve plain HTTP (behind a TLS proxy).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="SPECMAN_TLS_CERT")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="SPECMAN_TLS_KEY")
@click.option(
    "--tls-san", "tls_sans", multiple=True, metavar="NAME", help="Extra SAN (DNS name or IP) for the generated cert."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="SPECMAN_WORKERS",
    help="Server processes sharing the port.",
)
@click.option(
    "--basic-auth-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_BASIC_AUTH_FILE",
    help="Require HTTP Basic auth; the file holds one line 'user:password'.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    /,
    repo: str,
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
    workers: int,
    basic_auth_file: Path | None,
    **kw: Any,
) -> None:
    """Sync REPO into DIR (as ``specman sync``) and serve DIR's merged view over HTTPS."""
    # The server stack (granian, Starlette) loads only for this command: other commands start faster and smaller.
    from specman.server.app import BASIC_AUTH_ENV, DATA_DIR_ENV, read_basic_auth

    host, port = parse_listen(listen)
    if basic_auth_file is not None:
        try:
            read_basic_auth(basic_auth_file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--basic-auth-file: {exc}") from None
    source, settings = sync_settings(ctx, repo, tag_globs, semver, keep_deleted, parallel, max_size, max_files, kw)
    try:
        with Store(data_dir) as store:
            tls = tls_files(store.data_dir, no_tls, tls_cert, tls_key, tls_sans)
            os.environ[DATA_DIR_ENV] = str(store.data_dir.resolve())
            if basic_auth_file is not None:
                os.environ[BASIC_AUTH_ENV] = str(basic_auth_file.resolve())
            else:
                os.environ.pop(BASIC_AUTH_ENV, None)
            stop = threading.Event()
            syncer = threading.Thread(
                target=run_loop,
                args=(settings.reconciler(source, store),),
                kwargs={"interval": interval, "stop": stop},
                name="specman-sync",
                daemon=True,
            )
            syncer.start()
            try:
                run_asgi("specman.server.app:app_from_env", host=host, port=port, workers=workers, tls=tls)
            finally:
                log.info("Stopping")
                stop.set()
                syncer.join()
    finally:
        source.close()
