"""``specman console --data-dir DIR``: the console's system API over HTTPS (granian), data in ``DIR/console.db``.

The parent process prepares everything once — the data directory (0700), the schema migrations, the secret key
(``DIR/secret.key`` or ``--secret-key-file``), the admin user (``--admin-password-file``, ``SPECMAN_ADMIN_PASSWORD``,
or a generated password written to ``DIR/admin-password``; the log names the file, never the password), job runs
left behind by a previous process (failed) and the TLS material (``tls_files``: ``DIR/tls/ca.crt`` for clients) —
then runs granian with ``--workers`` processes building the app with ``specman.console.app:app_from_env``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from specman import logs
from specman.errors import UsageError
from specman.sync_command import Duration
from specman.web import parse_listen, run_asgi, server_options, tls_files

__all__ = ["console"]

log = logging.getLogger("specman.console")
ADMIN_PASSWORD_ENV = "SPECMAN_ADMIN_PASSWORD"  # noqa: S105 - the variable's name


def _secret_file(path: Path, option: str) -> str:
    from specman.console.auth import read_secret_file

    try:
        value = read_secret_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not value:
        raise UsageError(f"{option} {path}: the file is empty")
    return value


def _prepare(
    data_dir: Path,
    database: str | None,
    secret_key_file: Path | None,
    admin_password: str | None,
) -> None:
    from specman.console.auth import ensure_admin
    from specman.console.crypto import load_or_create_key
    from specman.console.jobs import owner_alive
    from specman.console.storage import open_storage

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_key(secret_key_file or data_dir / "secret.key", create=secret_key_file is None)
    storage = open_storage(database or data_dir / "console.db")
    try:
        where = ensure_admin(storage, data_dir, admin_password)
        log.info("Admin password", extra={"fields": {"user": "admin", "source": where}})
        failed = storage.fail_orphaned_runs(time.time(), owner_alive)
        if failed:
            log.warning(
                "Job runs interrupted by the previous shutdown marked failed", extra={"fields": {"runs": failed}}
            )
    finally:
        storage.close()


@click.command()
@click.option(
    "--data-dir",
    required=True,
    envvar="SPECMAN_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for console.db, secret.key, admin-password and tls/.",
)
@server_options("0.0.0.0:8444", "Server processes sharing the port (jobs are coordinated through the database).")
@click.option(
    "--admin-password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_ADMIN_PASSWORD_FILE",
    help="The admin password (first line). Else SPECMAN_ADMIN_PASSWORD, else generated into DIR/admin-password.",
)
@click.option(
    "--secret-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_SECRET_KEY_FILE",
    help="AES key for secrets at rest (32 bytes, base64). Default: DIR/secret.key, generated once.",
)
@click.option(
    "--service-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SPECMAN_SERVICE_TOKEN_FILE",
    help="Token (first line) that specman serve presents to read the Spectro manifests registry.",
)
@click.option(
    "--token-ttl",
    type=Duration(),
    default="24h",
    show_default=True,
    envvar="SPECMAN_TOKEN_TTL",
    help="Lifetime of session tokens.",
)
@click.option(
    "--database",
    envvar="SPECMAN_CONSOLE_DATABASE",
    metavar="URL",
    help="sqlite:///PATH (default: DIR/console.db).",
)
@click.pass_context
def console(
    ctx: click.Context,
    /,
    data_dir: Path,
    listen: str,
    no_tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_sans: tuple[str, ...],
    tls_min: str,
    workers: int,
    admin_password_file: Path | None,
    secret_key_file: Path | None,
    service_token_file: Path | None,
    token_ttl: float,
    database: str | None,
) -> None:
    """Serve the console's system API (login, SCAR config, pack registries, jobs) over HTTPS."""
    from specman.console.app import ENV

    root = ctx.find_root().params
    logs.configure("debug" if root.get("verbose", 0) > 1 else "info", fmt=root.get("log_format") or "text")
    host, port = parse_listen(listen)
    admin_password = (
        _secret_file(admin_password_file, "--admin-password-file")
        if admin_password_file
        else os.environ.get(ADMIN_PASSWORD_ENV) or None
    )
    if service_token_file is not None:
        _secret_file(service_token_file, "--service-token-file")
    _prepare(data_dir, database, secret_key_file, admin_password)
    tls = tls_files(data_dir, no_tls, tls_cert, tls_key, tls_sans)
    settings = {
        "data_dir": str(data_dir.resolve()),
        "database": database,
        "secret_key_file": str(secret_key_file.resolve()) if secret_key_file else None,
        "service_token_file": str(service_token_file.resolve()) if service_token_file else None,
        "token_ttl": str(token_ttl),
    }
    for name, var in ENV.items():
        value = settings[name]
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    os.environ.pop(ADMIN_PASSWORD_ENV, None)  # the workers do not need it
    fields = {"listen": f"{'http' if tls is None else 'https'}://{listen}", "workers": workers}
    if tls is not None and tls_cert is None:
        fields["ca"] = str(data_dir / "tls" / "ca.crt")
    log.info("Console starting", extra={"fields": fields})
    run_asgi("specman.console.app:app_from_env", host=host, port=port, workers=workers, tls=tls, tls_min=tls_min)
    log.info("Stopping")
