"""The ``specman`` command line: one entry point, ``--help`` everywhere, exit 0 / 1 (failure) / 2 (usage).

Every option also reads ``SPECMAN_<OPTION>`` from the environment (the shared ones: ``cli_options.py``).
Passwords are read from stdin (``--password-stdin``), a file (``--password-file``) or ``SPECMAN_PASSWORD`` — never
from argv.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from specman import __version__, logs
from specman.archive import extract_archive
from specman.cli_options import (
    check_dest,
    connection_options,
    limits,
    open_source,
    read_password,
    read_secret_file,
    registry_options,
    registry_options_from,
    with_limits,
)
from specman.errors import SpecmanError, UsageError
from specman.oci import (
    RegistryClient,
    RegistryOptions,
    open_target,
    parse_reference,
    pull_artifact,
    push_artifact,
)
from specman.oci.auth import RegistryAuth
from specman.oci.credentials import Credentials, DockerConfig
from specman.oci.reference import DOCKER_HUB
from specman.ui import UI

__all__ = ["main"]

# the commands with their own modules, imported only when they run (or when --help lists them)
_LAZY_COMMANDS: dict[str, str] = {
    "console": "specman.console_command:console",
    "migrate": "specman.migrate_command:migrate",
    "quickstart": "specman.quickstart:quickstart",
    "serve": "specman.serve_command:serve",
    "sync": "specman.sync_command:sync",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is needed.

    click's documented pattern for lazily loaded subcommands: ``specman push`` does not pay for importing the
    service, console and migration code (their modules and what they import), which the CLI's start-up time
    — part of every push and pull — would otherwise include.
    """

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, name = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), self.lazy[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=_LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="specman")
@click.option("-q", "--quiet", is_flag=True, envvar="SPECMAN_QUIET", help="No progress bars or status lines.")
@click.option(
    "-v", "--verbose", count=True, envvar="SPECMAN_VERBOSE", help="Log retries and HTTP details to stderr (-vv: debug)."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="SPECMAN_LOG_FORMAT",
    help="Log line format (logrus-style text or JSON).",
)
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: int, log_format: str) -> None:
    """specman: keep product manifests in an OCI registry and serve them over HTTPS."""
    logs.configure("debug" if verbose > 1 else "info" if verbose else "warning", fmt=log_format)
    ctx.obj = UI(quiet=quiet)


@cli.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("ref")
@registry_options
@click.option(
    "--mtime",
    type=int,
    default=0,
    show_default=True,
    envvar="SPECMAN_MTIME",
    help="Timestamp stored for every archive member.",
)
@click.pass_obj
def push(ui: UI, /, source: Path, ref: str, mtime: int, **kw: Any) -> None:
    """Push SOURCE (a directory, packed as manifests.tgz, or a file) to REF; prints the manifest digest."""
    target = open_target(ref, registry_options_from(kw), create_layout=True)
    if source.is_dir():
        ui.status(f"Packing {source} as manifests.tgz")
    try:
        with ui.progress() as start:
            result = push_artifact(target.repository, source, target.ref, mtime=mtime, start_progress=start)
    finally:
        target.repository.close()
    note = "" if result.uploaded else " (layer already present)"
    ui.status(f"Pushed {target.repository.display}:{target.ref}{note}")
    ui.result(result.digest)


@cli.command()
@click.argument("ref")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@registry_options
@with_limits
@click.option(
    "--no-extract",
    is_flag=True,
    envvar="SPECMAN_NO_EXTRACT",
    help="Save each layer as a file named by its title, like oras pull.",
)
@click.pass_obj
def pull(
    ui: UI,
    /,
    ref: str,
    dest: Path,
    max_size: int | None,
    max_files: int | None,
    force: bool,
    no_extract: bool,
    **kw: Any,
) -> None:
    """Download REF, verify every digest and extract it safely into DEST."""
    target = open_target(ref, registry_options_from(kw))  # a malformed REF is a usage error, whatever DEST holds
    try:
        if not no_extract:
            check_dest(dest, force)  # before any download starts
        with ui.progress() as start:
            result = pull_artifact(
                target.repository,
                target.ref,
                dest,
                extract=not no_extract,
                replace=force,
                limits=limits(max_size, max_files),
                start_progress=start,
            )
    finally:
        target.repository.close()
    ui.status(
        f"Pulled {target.repository.display}:{target.ref}: {result.files} files, {result.bytes} bytes into {dest}"
    )
    ui.result(result.digest)


@cli.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@with_limits
@click.pass_obj
def extract(ui: UI, archive: Path, dest: Path, max_size: int | None, max_files: int | None, force: bool) -> None:
    """Extract ARCHIVE (tar, tar.gz or tar.zst) safely into DEST."""
    check_dest(dest, force)
    with open(archive, "rb") as fh:
        result = extract_archive(fh, dest, limits=limits(max_size, max_files), replace=force)
    ui.status(f"Extracted {result.files} files ({result.bytes} bytes) into {dest}")


@cli.command()
@click.argument("repo")
@registry_options
@click.option(
    "--page-size",
    envvar="SPECMAN_PAGE_SIZE",
    type=click.IntRange(min=1, max=10000),
    help="Tags per request (the registry's n parameter).",
)
@click.pass_obj
def tags(ui: UI, /, repo: str, page_size: int | None, **kw: Any) -> None:
    """List the tags of REPO."""
    repository = open_source(repo, registry_options_from(kw))
    try:
        for tag in repository.tags(page_size=page_size):
            ui.result(tag)
    finally:
        repository.close()


def _registry_host(value: str) -> str:
    host = value.split("://", 1)[-1].rstrip("/")
    if not host or "/" in host:
        raise UsageError(f"expected a registry host like registry.example.com:5000, got {value!r}")
    if host == DOCKER_HUB:
        return host
    parse_reference(f"{host}/probe")  # validates host[:port]
    return host


@cli.command()
@click.argument("registry")
@connection_options
@click.pass_obj
def login(
    ui: UI,
    registry: str,
    username: str | None,
    username_file: Path | None,
    password_stdin: bool,
    password_file: Path | None,
    provider: str,
    plain_http: bool,
    insecure: bool,
    ca_file: str | None,
) -> None:
    """Check credentials against REGISTRY and save them in the docker config.json."""
    host = _registry_host(registry)
    if provider == "aws":
        raise UsageError("with --provider aws there is nothing to log in to: the password comes from AWS at each use")
    if username_file is not None:
        username = username or read_secret_file(username_file, "--username-file").strip()
    password = read_password(password_stdin, password_file)
    if password is None:
        password = os.environ.get("SPECMAN_PASSWORD")
    if not username:
        if not sys.stdin.isatty() or password_stdin:
            raise UsageError("login needs --username (or SPECMAN_USERNAME)")
        username = click.prompt("Username")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("login needs --password-stdin, --password-file or SPECMAN_PASSWORD")
        password = click.prompt("Password", hide_input=True)
    creds = Credentials(username, password)
    options = RegistryOptions(plain_http=plain_http, insecure=insecure, ca_file=ca_file)
    with RegistryClient(
        host if host != DOCKER_HUB else "registry-1.docker.io", tls=options.tls, auth=RegistryAuth(creds)
    ) as client:
        client.ping()
    where = DockerConfig().store(host, creds)
    ui.status(f"Login Succeeded (credentials saved in {where})")


@cli.command()
@click.argument("registry")
@click.pass_obj
def logout(ui: UI, registry: str) -> None:
    """Remove the saved credentials of REGISTRY."""
    host = _registry_host(registry)
    if DockerConfig().erase(host):
        ui.status(f"Removed login credentials for {host}")
    else:
        ui.status(f"Not logged in to {host}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: map specman errors to one line on stderr and exit 1 (2 for usage errors)."""
    try:
        cli.main(args=argv, prog_name="specman", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except SpecmanError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"Error:{where}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    sys.exit(0)
