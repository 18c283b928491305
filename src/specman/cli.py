"""The ``specman`` command line: one entry point, ``--help`` everywhere, exit 0 / 1 (failure) / 2 (usage).

Every option also reads ``SPECMAN_<OPTION>`` from the environment.  Passwords are read from stdin
(``--password-stdin``), a file (``--password-file``) or ``SPECMAN_PASSWORD`` — never from argv.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from specman import __version__, logs
from specman.archive import ExtractLimits, extract_archive
from specman.errors import SpecmanError, UsageError
from specman.oci import (
    RegistryClient,
    RegistryOptions,
    Repository,
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

F = TypeVar("F", bound=Callable[..., Any])
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """``1048576``, ``512MiB``, ``8G`` → bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE_RE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size (examples: 1048576, 512MiB, 8GiB)", param, ctx)
        number, unit = float(match.group(1)), match.group(2).lower()
        return int(number * 1024 ** " kmgt".index(unit or " "))


def _read_secret_file(path: Path, option: str) -> str:
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read {option} {path}: {exc.strerror}") from None


def _read_password(password_stdin: bool, password_file: Path | None) -> str | None:
    if password_stdin and password_file:
        raise UsageError("--password-stdin and --password-file are mutually exclusive")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return _read_secret_file(password_file, "--password-file") if password_file else None


_CONNECTION_OPTIONS = [
    click.option("-u", "--username", envvar="SPECMAN_USERNAME", help="Registry username."),
    click.option(
        "--username-file",
        envvar="SPECMAN_USERNAME_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the registry username from a file (re-read like --password-file).",
    ),
    click.option("--password-stdin", is_flag=True, help="Read the registry password from stdin."),
    click.option(
        "--password-file",
        envvar="SPECMAN_PASSWORD_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the registry password from a file.",
    ),
    click.option("--plain-http", is_flag=True, envvar="SPECMAN_PLAIN_HTTP", help="Talk plain HTTP to the registry."),
    click.option("--insecure", is_flag=True, envvar="SPECMAN_INSECURE", help="Skip TLS certificate verification."),
    click.option(
        "--ca-file",
        envvar="SPECMAN_CA_FILE",
        type=click.Path(exists=True, dir_okay=False),
        help="Extra CA certificates (PEM) to trust.",
    ),
]
_LAYOUT_OPTION = click.option(
    "--oci-layout",
    is_flag=True,
    envvar="SPECMAN_OCI_LAYOUT",
    help="The reference is PATH[:TAG|@DIGEST] of an OCI image layout.",
)


def _apply(func: F, options: Sequence[Callable[[Any], Any]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def connection_options(func: F) -> F:
    """Credentials and TLS options (each also read from ``SPECMAN_<OPTION>``)."""
    return _apply(func, _CONNECTION_OPTIONS)


def registry_options(func: F) -> F:
    """The common registry options: connection options plus ``--oci-layout``."""
    return _apply(func, [*_CONNECTION_OPTIONS, _LAYOUT_OPTION])


def _options(kw: dict[str, Any], *, files_may_appear: bool = False) -> RegistryOptions:
    """The registry options of a command.  ``--username-file``/``--password-file`` are checked now and read again
    at each credential lookup, so a long-running ``sync``/``serve`` picks up a rotated Secret (after the registry
    refused the old one).  ``files_may_appear`` (those two commands): a file that does not exist yet (a deleted,
    optional Secret) is logged instead of refused; syncs fail until it exists."""
    username, username_file = kw.pop("username"), kw.pop("username_file")
    password_file: Path | None = kw.pop("password_file")
    if username and username_file:
        raise UsageError("--username and --username-file are mutually exclusive")
    password = _read_password(kw.pop("password_stdin"), None if files_may_appear else password_file)
    for path, option in ((username_file, "--username-file"), (password_file, "--password-file")):
        if path is not None and files_may_appear and not path.is_file():
            logging.getLogger("specman").warning("%s %s does not exist (yet): syncs fail until it does", option, path)
        elif path is not None:
            _read_secret_file(path, option)
    return RegistryOptions(
        username=username,
        username_file=username_file,
        password=None if password_file else password,
        password_file=password_file,
        plain_http=kw.pop("plain_http"),
        insecure=kw.pop("insecure"),
        ca_file=kw.pop("ca_file"),
        oci_layout=kw.pop("oci_layout"),
    )


def open_source(repo: str, options: RegistryOptions) -> Repository:
    """REPO (a reference without tag or digest, or a layout path with ``--oci-layout``) as a repository."""
    target = open_target(repo, options, default_tag=None)
    if target.tag or target.digest:
        target.repository.close()
        raise UsageError(f"expected a repository without tag or digest, got {repo!r}")
    return target.repository


def _check_dest(dest: Path, force: bool) -> None:
    """Refuse a non-empty DEST before any download starts, naming the flag that overrides it."""
    if not force and dest.is_dir() and any(dest.iterdir()):
        raise SpecmanError(f"destination {dest} is not empty (use --force to replace it)")


def _limits(max_size: int | None, max_files: int | None) -> ExtractLimits:
    defaults = ExtractLimits()
    return ExtractLimits(max_bytes=max_size or defaults.max_bytes, max_files=max_files or defaults.max_files)


extract_limit_options = [
    click.option(
        "--max-size",
        type=ByteSize(),
        envvar="SPECMAN_MAX_SIZE",
        help="Refuse archives that extract to more bytes (default 8GiB).",
    ),
    click.option(
        "--max-files",
        type=click.IntRange(min=1),
        envvar="SPECMAN_MAX_FILES",
        help="Refuse archives with more entries (default 1000000).",
    ),
]
limit_options = [
    *extract_limit_options,
    click.option("--force", is_flag=True, envvar="SPECMAN_FORCE", help="Replace DEST if it exists and is not empty."),
]


def with_limits(func: F) -> F:
    """``--max-size``, ``--max-files`` and ``--force`` (commands that extract into a DEST)."""
    return _apply(func, limit_options)


def with_extract_limits(func: F) -> F:
    """``--max-size`` and ``--max-files`` alone (commands that extract into the data directory)."""
    return _apply(func, extract_limit_options)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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
    target = open_target(ref, _options(kw), create_layout=True)
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
    if not no_extract:
        _check_dest(dest, force)
    target = open_target(ref, _options(kw))
    try:
        with ui.progress() as start:
            result = pull_artifact(
                target.repository,
                target.ref,
                dest,
                extract=not no_extract,
                replace=force,
                limits=_limits(max_size, max_files),
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
    _check_dest(dest, force)
    with open(archive, "rb") as fh:
        result = extract_archive(fh, dest, limits=_limits(max_size, max_files), replace=force)
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
    repository = open_source(repo, _options(kw))
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
    plain_http: bool,
    insecure: bool,
    ca_file: str | None,
) -> None:
    """Check credentials against REGISTRY and save them in the docker config.json."""
    host = _registry_host(registry)
    if username_file is not None:
        username = username or _read_secret_file(username_file, "--username-file").strip()
    password = _read_password(password_stdin, password_file)
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


from specman.quickstart import quickstart  # noqa: E402  (registers the command)
from specman.serve_command import serve  # noqa: E402  (registers the command)
from specman.sync_command import sync  # noqa: E402  (registers the command)

cli.add_command(quickstart)
cli.add_command(sync)
cli.add_command(serve)


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


from specman.console_command import console  # noqa: E402  (registers the command)
from specman.migrate_command import migrate  # noqa: E402  (registers the command)

cli.add_command(console)
cli.add_command(migrate)
