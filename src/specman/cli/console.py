"""``specman console --data-dir DIR``: the console's system API over HTTPS (granian), data in ``DIR/console.db``.

The parent process prepares everything once — the data directory (0700), the schema migrations, the secret key
(``DIR/secret.key`` or ``--secret-key-file``), the admin user (``--admin-password-file``, ``SPECMAN_ADMIN_PASSWORD``,
or a generated password written to ``DIR/admin-password``; the log names the file, never the password), job runs
left behind by a previous process (failed) and the TLS material (``tls_files``: ``DIR/tls/ca.crt`` for clients) —
then hands the process to a ``specman.runtime.Supervisor``: granian with ``--workers`` processes building the app
with ``specman.runtime.workers.console_app`` from the settings in its run directory.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import click

from specman.cli.options import Duration, ServerSettings
from specman.cli.settings import file_opt, opt, uses
from specman.cli.sync import configure_logging
from specman.errors import UsageError
from specman.runtime.granian import check_tls, parse_listen
from specman.runtime.rundir import RunDir
from specman.runtime.supervisor import Listener, Supervisor
from specman.runtime.workers import ConsoleWorkers

__all__ = ["ConsoleSettings", "console"]

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


@dataclass(frozen=True)
class ConsoleSettings(ServerSettings):
    """``console``'s options: its data dir, the shared server options (on 8444), the admin, keys and tokens."""

    param: ClassVar[str] = "settings"

    data_dir: Path = opt(
        "--data-dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory for console.db, secret.key, admin-password and tls/.",
    )
    listen: str = opt("--listen", default="0.0.0.0:8444", show_default=True, help="Address to serve on.")
    workers: int = opt(
        "--workers",
        type=click.IntRange(1, 64),
        default=1,
        show_default=True,
        help="Server processes sharing the port (jobs are coordinated through the database).",
    )
    admin_password_file: Path | None = file_opt(
        "--admin-password-file",
        help="The admin password (first line). Else SPECMAN_ADMIN_PASSWORD, else generated into DIR/admin-password.",
    )
    secret_key_file: Path | None = file_opt(
        "--secret-key-file",
        help="AES key for secrets at rest (32 bytes, base64). Default: DIR/secret.key, generated once.",
    )
    service_token_file: Path | None = file_opt(
        "--service-token-file",
        help="Token (first line) that specman serve presents to read the Spectro manifests registry.",
    )
    token_ttl: float = opt(
        "--token-ttl", type=Duration(), default="24h", show_default=True, help="Lifetime of session tokens."
    )
    database: str | None = opt(
        "--database", envvar="SPECMAN_CONSOLE_DATABASE", metavar="URL", help="sqlite:///PATH (default: DIR/console.db)."
    )

    def workers_config(self) -> ConsoleWorkers:
        return ConsoleWorkers(
            data_dir=str(self.data_dir.resolve()),
            database=self.database,
            secret_key_file=str(self.secret_key_file.resolve()) if self.secret_key_file else None,
            service_token_file=str(self.service_token_file.resolve()) if self.service_token_file else None,
            token_ttl=self.token_ttl,
        )


@click.command()
@uses(ConsoleSettings)
def console(settings: ConsoleSettings) -> None:
    """Serve the console's system API (login, SCAR config, pack registries, jobs) over HTTPS."""
    configure_logging(click.get_current_context())
    host, port = parse_listen(settings.listen)
    admin_password = (
        _secret_file(settings.admin_password_file, "--admin-password-file")
        if settings.admin_password_file
        else os.environ.get(ADMIN_PASSWORD_ENV) or None
    )
    if settings.service_token_file is not None:
        _secret_file(settings.service_token_file, "--service-token-file")
    check_tls(settings.no_tls, settings.tls_cert, settings.tls_key)
    _prepare(settings.data_dir, settings.database, settings.secret_key_file, admin_password)
    os.environ.pop(ADMIN_PASSWORD_ENV, None)  # the workers do not need it
    listener = Listener(
        host,
        port,
        settings.workers,
        settings.no_tls,
        settings.tls_cert,
        settings.tls_key,
        settings.tls_sans,
        settings.tls_min,
    )
    supervisor = Supervisor(
        "console",
        settings.data_dir,
        listener,
        factory="specman.runtime.workers:console_app",
        workers_config=lambda _store: settings.workers_config(),
        preload=("specman.console.app", "specman.console.auth"),
    )

    def starting(_run: RunDir, tls: tuple[Path, Path] | None) -> None:
        fields: dict[str, object] = {"listen": f"{'http' if tls is None else 'https'}://{settings.listen}"}
        fields["workers"] = settings.workers
        if tls is not None and settings.tls_cert is None:
            fields["ca"] = str(settings.data_dir / "tls" / "ca.crt")
        log.info("Console starting", extra={"fields": fields})

    supervisor.run(on_ready=starting)
