"""The options several commands share: registry connection and credentials, extraction limits, sizes.

Every option also reads ``SPECMAN_<OPTION>`` from the environment.  Passwords are read from stdin
(``--password-stdin``), a file (``--password-file``) or ``SPECMAN_PASSWORD`` — never from argv.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from specman.archive import ExtractLimits
from specman.errors import SpecmanError, UsageError
from specman.oci import RegistryOptions, Repository, open_target
from specman.oci.providers import PROVIDERS

__all__ = [
    "ByteSize",
    "check_dest",
    "connection_options",
    "limits",
    "open_source",
    "read_password",
    "read_secret_file",
    "registry_options",
    "registry_options_from",
    "with_extract_limits",
    "with_limits",
]

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


def read_secret_file(path: Path, option: str) -> str:
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read {option} {path}: {exc.strerror}") from None


def read_password(password_stdin: bool, password_file: Path | None) -> str | None:
    if password_stdin and password_file:
        raise UsageError("--password-stdin and --password-file are mutually exclusive")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return read_secret_file(password_file, "--password-file") if password_file else None


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
    click.option(
        "--provider",
        type=click.Choice(PROVIDERS),
        default="auto",
        show_default=True,
        envvar="SPECMAN_PROVIDER",
        help="Registry password from a cloud identity: aws (ECR GetAuthorizationToken with the AWS credential "
        "chain); auto uses aws for ECR host names; generic: flags, environment, docker config.",
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


def registry_options_from(kw: dict[str, Any], *, files_may_appear: bool = False) -> RegistryOptions:
    """The registry options of a command.  ``--username-file``/``--password-file`` are checked now and read again
    at each credential lookup, so a long-running ``sync``/``serve`` picks up a rotated Secret (after the registry
    refused the old one).  ``files_may_appear`` (those two commands): a file that does not exist yet (a deleted,
    optional Secret) is logged instead of refused; syncs fail until it exists."""
    username, username_file = kw.pop("username"), kw.pop("username_file")
    password_file: Path | None = kw.pop("password_file")
    if username and username_file:
        raise UsageError("--username and --username-file are mutually exclusive")
    password = read_password(kw.pop("password_stdin"), None if files_may_appear else password_file)
    for path, option in ((username_file, "--username-file"), (password_file, "--password-file")):
        if path is not None and files_may_appear and not path.is_file():
            logging.getLogger("specman").warning("%s %s does not exist (yet): syncs fail until it does", option, path)
        elif path is not None:
            read_secret_file(path, option)
    return RegistryOptions(
        username=username,
        username_file=username_file,
        password=None if password_file else password,
        password_file=password_file,
        plain_http=kw.pop("plain_http"),
        insecure=kw.pop("insecure"),
        ca_file=kw.pop("ca_file"),
        oci_layout=kw.pop("oci_layout"),
        provider=kw.pop("provider"),
    )


def open_source(repo: str, options: RegistryOptions) -> Repository:
    """REPO (a reference without tag or digest, or a layout path with ``--oci-layout``) as a repository."""
    target = open_target(repo, options, default_tag=None)
    if target.tag or target.digest:
        target.repository.close()
        raise UsageError(f"expected a repository without tag or digest, got {repo!r}")
    return target.repository


def check_dest(dest: Path, force: bool) -> None:
    """Refuse a non-empty DEST before any download starts, naming the flag that overrides it."""
    if not force and dest.is_dir() and any(dest.iterdir()):
        raise SpecmanError(f"destination {dest} is not empty (use --force to replace it)")


def limits(max_size: int | None, max_files: int | None) -> ExtractLimits:
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
