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
from pathlib import Path
from typing import Any

import click

from specman.cli_options import read_secret_file, registry_options, registry_options_from
from specman.console.client import ConsoleClient
from specman.errors import SpecmanError, UsageError
from specman.migrate.endpoint import SpecmanEndpoint
from specman.migrate.run import Migration, MigrationPlan
from specman.migrate.source import open_source
from specman.oci import open_target
from specman.oci.http import TLSOptions
from specman.signature_command import read_signing_key, sign_key_options
from specman.ui import UI

__all__ = ["migrate", "read_secret", "run_migration"]

CLUSTER_ENDPOINT = "https://specman-service.hubble-system.svc.cluster.local:8443"
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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


@click.command()
@click.option("--from", "source", required=True, envvar="SPECMAN_FROM", help="The old SCAR: a directory or its URL.")
@click.option("--to", "ref", required=True, envvar="SPECMAN_TO", help="Where to push: HOST[:PORT]/NAME[:TAG].")
@click.option("--console", "console_url", required=True, envvar="SPECMAN_CONSOLE", help="The console's URL.")
@click.option("--tag", default=None, envvar="SPECMAN_TAG", help="Tag to push (default 0.0.0, or the one in --to).")
@click.option("--console-user", default="admin", show_default=True, envvar="SPECMAN_CONSOLE_USER")
@click.option("--console-password-file", type=_FILE, envvar="SPECMAN_CONSOLE_PASSWORD_FILE")
@click.option("--console-ca-file", type=_FILE, envvar="SPECMAN_CONSOLE_CA_FILE", help="CA of the console (PEM).")
@click.option("--specman", "specman_url", default=CLUSTER_ENDPOINT, show_default=True, envvar="SPECMAN_SPECMAN")
@click.option("--specman-ca-file", type=_FILE, envvar="SPECMAN_SPECMAN_CA_FILE", help="CA of specman (its tls/ca.crt).")
@click.option(
    "--specman-username",
    envvar="SPECMAN_SPECMAN_USERNAME",
    help="User of specman's Basic auth, if it has one (its --basic-auth-file); also set as the SCAR's.",
)
@click.option(
    "--specman-password-file", type=_FILE, envvar="SPECMAN_SPECMAN_PASSWORD_FILE", help="Or SPECMAN_SPECMAN_PASSWORD."
)
@click.option(
    "--notify-token-file",
    type=_FILE,
    envvar="SPECMAN_NOTIFY_TOKEN_FILE",
    help="specman's notification token (or SPECMAN_NOTIFY_TOKEN): wake it at once instead of waiting for its sync.",
)
@click.option("--from-username", envvar="SPECMAN_FROM_USERNAME", help="User for a SCAR URL (Basic auth).")
@click.option("--from-password-file", type=_FILE, envvar="SPECMAN_FROM_PASSWORD_FILE", help="Or SPECMAN_FROM_PASSWORD.")
@click.option("--from-ca-file", type=_FILE, envvar="SPECMAN_FROM_CA_FILE", help="CA of a SCAR URL (PEM).")
@click.option("--from-insecure", is_flag=True, envvar="SPECMAN_FROM_INSECURE", help="Do not verify the SCAR's TLS.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    envvar="SPECMAN_TIMEOUT",
    help="Seconds to wait for specman to serve the push, and for each job.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SPECMAN_WORK_DIR",
    help="Where the archive (and a SCAR URL's copy) are made (default: a temp dir).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1, max=16),
    default=1,
    show_default=True,
    envvar="SPECMAN_PROCESSES",
    help="Processes fetching files over HTTP for the copy and the parity proof of large trees "
    "(more help with 4+ CPUs; each helper takes ~80 MiB).",
)
@click.option("--dry-run", is_flag=True, help="Run the preflight checks and show the plan; change nothing.")
@click.option("-y", "--yes", is_flag=True, envvar="SPECMAN_YES", help="Do not ask for confirmation.")
@click.option("--no-rollback", is_flag=True, help="Keep the new SCAR endpoint even when the jobs fail after it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@registry_options
@sign_key_options
@click.pass_obj
def migrate(ui: UI, /, **kw: Any) -> None:
    """Move the SCAR's manifests into the registry and switch the console to specman, proving every file."""
    sign_key = read_signing_key(kw["sign_key"], kw["key_password_file"]) if kw["sign_key"] else None
    options = registry_options_from(kw)
    if not kw["dry_run"] and not kw["yes"] and not sys.stdin.isatty():
        raise UsageError("nothing to confirm on without a terminal: add --yes (or --dry-run to see the plan)")
    target = open_target(kw["ref"], options, default_tag=None, create_layout=options.oci_layout and not kw["dry_run"])
    if target.digest:
        raise UsageError(f"--to {kw['ref']!r}: a tag is pushed, not a digest")
    if target.tag and kw["tag"] and target.tag != kw["tag"]:
        raise UsageError(f"--to names tag {target.tag} and --tag says {kw['tag']}")
    tag = target.tag or kw["tag"] or "0.0.0"
    from_tls = TLSOptions(insecure=kw["from_insecure"], ca_file=str(kw["from_ca_file"] or "") or None)
    from_password = read_secret(kw["from_password_file"], "SPECMAN_FROM_PASSWORD", "--from-password-file")
    source = open_source(
        kw["source"], tls=from_tls, username=kw["from_username"], password=from_password, processes=kw["processes"]
    )
    console = ConsoleClient(
        kw["console_url"], tls=TLSOptions(ca_file=str(kw["console_ca_file"]) if kw["console_ca_file"] else None)
    )
    specman = SpecmanEndpoint(
        kw["specman_url"],
        ca_file=str(kw["specman_ca_file"] or "") or None,
        username=kw["specman_username"],
        password=read_secret(kw["specman_password_file"], "SPECMAN_SPECMAN_PASSWORD", "--specman-password-file"),
    )
    keep = kw["work_dir"] is not None
    work = kw["work_dir"] or Path(tempfile.mkdtemp(prefix="specman-migrate-"))
    try:
        plan = MigrationPlan(
            source=source,
            target=target,
            registry=options,
            console=console,
            console_user=kw["console_user"],
            console_password=_console_password(kw["console_password_file"]),
            specman=specman,
            tag=tag,
            work_dir=work,
            notify_token=read_secret(kw["notify_token_file"], "SPECMAN_NOTIFY_TOKEN", "--notify-token-file"),
            scar_password=from_password,
            rollback=not kw["no_rollback"],
            dry_run=kw["dry_run"],
            timeout=kw["timeout"],
            processes=kw["processes"],
            sign_key=sign_key,
        )
        confirm = None if kw["yes"] or kw["dry_run"] else (lambda text: click.confirm(text, err=True))
        run_migration(plan, ui, as_json=kw["as_json"], confirm=confirm)
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
