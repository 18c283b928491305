"""``specman migrate``: the whole SCAR → OCI migration in one command (see ``specman.migrate.run``).

Secrets come from files, the environment or stdin only: the console password (``--console-password-file``,
``SPECMAN_CONSOLE_PASSWORD``, or a hidden prompt on a terminal), the registry's (the common options), the old
SCAR's (``--from-password-file``, ``SPECMAN_FROM_PASSWORD``) and specman's notification token
(``--notify-token-file``, ``SPECMAN_NOTIFY_TOKEN``).  None of them is ever printed: the summary names the steps,
never a credential.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import click

from specman.cli.options import RegistrySettings, read_secret_file
from specman.cli.settings import Settings, file_opt, opt, uses
from specman.cli.signature import SignKeySettings
from specman.cli.ui import UI
from specman.console.client import ConsoleClient
from specman.errors import SpecmanError, UsageError
from specman.migrate.endpoint import SpecmanEndpoint
from specman.migrate.run import Migration, MigrationPlan
from specman.migrate.source import open_source
from specman.oci import open_target
from specman.oci.http import TLSOptions
from specman.oci.repository import RegistryOptions, Target

__all__ = ["migrate", "read_secret", "run_migration"]

CLUSTER_ENDPOINT = "https://specman-service.hubble-system.svc.cluster.local:8443"


def read_secret(path: Path | None, env: str, option: str) -> str | None:
    """The first line of the file given to ``option`` (read as every secret file is), else ``$env``, else None."""
    if path is not None:
        lines = read_secret_file(path, option).splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"{option} {path} is empty")
        return lines[0]
    return os.environ.get(env) or None


def _console_password(path: Path | None) -> str:
    password = read_secret(path, "SPECMAN_CONSOLE_PASSWORD", "--console-password-file")
    if password is not None:
        return password
    if sys.stdin.isatty():
        return str(click.prompt("Console password", hide_input=True, err=True))
    raise UsageError("the console password is needed: --console-password-file F or SPECMAN_CONSOLE_PASSWORD")


@dataclass(frozen=True)
class MigrateSettings(Settings):
    """Every option of ``migrate`` but the registry settings of ``--to``: the old SCAR, the console, specman."""

    param: ClassVar[str] = "settings"

    source: str = opt("--from", required=True, help="The old SCAR: a directory or its URL.")
    ref: str = opt("--to", required=True, help="Where to push: HOST[:PORT]/NAME[:TAG].")
    console_url: str = opt("--console", required=True, help="The console's URL.")
    tag: str | None = opt("--tag", default=None, help="Tag to push (default 0.0.0, or the one in --to).")
    console_user: str = opt("--console-user", default="admin", show_default=True)
    console_password_file: Path | None = file_opt("--console-password-file")
    console_ca_file: Path | None = file_opt("--console-ca-file", help="CA of the console (PEM).")
    specman_url: str = opt("--specman", default=CLUSTER_ENDPOINT, show_default=True)
    specman_ca_file: Path | None = file_opt("--specman-ca-file", help="CA of specman (its tls/ca.crt).")
    specman_username: str | None = opt(
        "--specman-username",
        help="User of specman's Basic auth, if it has one (its --basic-auth-file); also set as the SCAR's.",
    )
    specman_password_file: Path | None = file_opt("--specman-password-file", help="Or SPECMAN_SPECMAN_PASSWORD.")
    notify_token_file: Path | None = file_opt(
        "--notify-token-file",
        help="specman's notification token (or SPECMAN_NOTIFY_TOKEN): wake it at once instead of waiting for its sync.",
    )
    from_username: str | None = opt("--from-username", help="User for a SCAR URL (Basic auth).")
    from_password_file: Path | None = file_opt("--from-password-file", help="Or SPECMAN_FROM_PASSWORD.")
    from_ca_file: Path | None = file_opt("--from-ca-file", help="CA of a SCAR URL (PEM).")
    from_insecure: bool = opt("--from-insecure", is_flag=True, help="Do not verify the SCAR's TLS.")
    timeout: float = opt(
        "--timeout",
        type=click.FloatRange(min=1),
        default=300.0,
        show_default=True,
        help="Seconds to wait for specman to serve the push, and for each job.",
    )
    work_dir: Path | None = opt(
        "--work-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the archive (and a SCAR URL's copy) are made (default: a temp dir).",
    )
    processes: int = opt(
        "--processes",
        type=click.IntRange(min=1, max=16),
        default=1,
        show_default=True,
        help="Processes fetching files over HTTP for the copy and the parity proof of large trees "
        "(more help with 4+ CPUs; each helper takes ~80 MiB).",
    )
    dry_run: bool = opt("--dry-run", is_flag=True, help="Run the preflight checks and show the plan; change nothing.")
    yes: bool = opt("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    no_rollback: bool = opt(
        "--no-rollback", is_flag=True, help="Keep the new SCAR endpoint even when the jobs fail after it."
    )
    as_json: bool = opt("--json", is_flag=True, help="Print the summary as JSON on stdout.")

    def open_target(self, options: RegistryOptions) -> tuple[Target, str]:
        """Where to push (``--to``) and the tag (from ``--to`` or ``--tag``, default 0.0.0)."""
        target = open_target(self.ref, options, default_tag=None, create_layout=options.oci_layout and not self.dry_run)
        if target.digest:
            raise UsageError(f"--to {self.ref!r}: a tag is pushed, not a digest")
        if target.tag and self.tag and target.tag != self.tag:
            raise UsageError(f"--to names tag {target.tag} and --tag says {self.tag}")
        return target, target.tag or self.tag or "0.0.0"

    def console_client(self) -> ConsoleClient:
        return ConsoleClient(
            self.console_url, tls=TLSOptions(ca_file=str(self.console_ca_file) if self.console_ca_file else None)
        )

    def specman_endpoint(self) -> SpecmanEndpoint:
        return SpecmanEndpoint(
            self.specman_url,
            ca_file=str(self.specman_ca_file or "") or None,
            username=self.specman_username,
            password=read_secret(self.specman_password_file, "SPECMAN_SPECMAN_PASSWORD", "--specman-password-file"),
        )


@click.command()
@uses(MigrateSettings, RegistrySettings, SignKeySettings)
@click.pass_obj
def migrate(ui: UI, /, settings: MigrateSettings, registry: RegistrySettings, signing: SignKeySettings) -> None:
    """Move the SCAR's manifests into the registry and switch the console to specman, proving every file."""
    sign_key = signing.key()  # a bad key or passphrase stops here, before anything is checked or changed
    options = registry.options()
    if not settings.dry_run and not settings.yes and not sys.stdin.isatty():
        raise UsageError("nothing to confirm on without a terminal: add --yes (or --dry-run to see the plan)")
    target, tag = settings.open_target(options)
    from_password = read_secret(settings.from_password_file, "SPECMAN_FROM_PASSWORD", "--from-password-file")
    source = open_source(
        settings.source,
        tls=TLSOptions(insecure=settings.from_insecure, ca_file=str(settings.from_ca_file or "") or None),
        username=settings.from_username,
        password=from_password,
        processes=settings.processes,
    )
    console, specman = settings.console_client(), settings.specman_endpoint()
    keep = settings.work_dir is not None
    work = settings.work_dir or Path(tempfile.mkdtemp(prefix="specman-migrate-"))
    try:
        plan = MigrationPlan(
            source=source,
            target=target,
            registry=options,
            console=console,
            console_user=settings.console_user,
            console_password=_console_password(settings.console_password_file),
            specman=specman,
            tag=tag,
            work_dir=work,
            notify_token=read_secret(settings.notify_token_file, "SPECMAN_NOTIFY_TOKEN", "--notify-token-file"),
            scar_password=from_password,
            rollback=not settings.no_rollback,
            dry_run=settings.dry_run,
            timeout=settings.timeout,
            processes=settings.processes,
            sign_key=sign_key,
        )
        confirm = None if settings.yes or settings.dry_run else (lambda text: click.confirm(text, err=True))
        run_migration(plan, ui, as_json=settings.as_json, confirm=confirm)
    finally:
        for closable in (source, console, specman, target.repository):
            closable.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def run_migration(plan: MigrationPlan, ui: UI, *, as_json: bool = False, confirm: Any = None) -> dict[str, Any]:
    """Run it; print the summary (text on stderr, or JSON on stdout); re-raise a failure after the summary."""
    migration = Migration(plan, ui, confirm=confirm)
    try:
        summary = migration.run()
    except SpecmanError:
        if as_json:
            ui.result(json.dumps(migration.summary, indent=2))
        raise
    if as_json:
        ui.result(json.dumps(summary, indent=2))
    else:
        _print_summary(ui, summary)
    return summary


def _print_summary(ui: UI, s: dict[str, Any]) -> None:
    if s.get("dryRun"):
        return
    d = s["durations"]
    ui.status("Migration complete:")
    ui.status(f"  source     {s['source']}")
    ui.status(f"  files      {s.get('files')} ({s.get('bytes')} bytes), parity proven over HTTPS")
    ui.status(f"  artifact   {s['reference']} {s.get('digest')}" + ("" if s.get("pushed") else " (already there)"))
    ui.status(f"  endpoint   {s['endpoint']} (the console's SCAR; jobs succeeded)")
    timing = ", ".join(f"{name} {secs:.2f} s" for name, secs in d.items())
    ui.status(f"  durations  {timing}")
