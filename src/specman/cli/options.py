"""The settings several commands share — registry connection and credentials, extraction limits, the server's
listen address and TLS — and the parameter types and readers they use.

Every option also reads ``SPECMAN_<OPTION>`` from the environment (``specman.cli.settings``).  Passwords are read
from stdin (``--password-stdin``), a file (``--password-file``) or ``SPECMAN_PASSWORD`` — never from argv.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import click

from specman.archive import ExtractLimits
from specman.cli.settings import Settings, file_opt, opt
from specman.errors import SpecmanError, UsageError
from specman.oci import RegistryOptions, Repository, open_target
from specman.oci.providers import PROVIDERS
from specman.runtime.granian import TLS_VERSIONS
from specman.sync.loop import parse_duration

__all__ = [
    "ByteSize",
    "ConnectionSettings",
    "Duration",
    "LimitSettings",
    "RegistrySettings",
    "ServerSettings",
    "check_dest",
    "open_source",
    "read_password",
    "read_secret_file",
]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``30s``, ``5m``, ``1h``, ``500ms`` or plain seconds → seconds (a float > 0)."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float) and value > 0:
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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


@dataclass(frozen=True)
class ConnectionSettings(Settings):
    """Credentials and TLS for a registry (``login``, ``quickstart``; with ``--oci-layout``: ``RegistrySettings``)."""

    param: ClassVar[str] = "connection"

    username: str | None = opt("-u", "--username", help="Registry username.")
    username_file: Path | None = file_opt(
        "--username-file", help="Read the registry username from a file (re-read like --password-file).", exists=False
    )
    password_stdin: bool = opt(
        "--password-stdin", is_flag=True, envvar=None, help="Read the registry password from stdin."
    )
    password_file: Path | None = file_opt(
        "--password-file", help="Read the registry password from a file.", exists=False
    )
    provider: str = opt(
        "--provider",
        type=click.Choice(PROVIDERS),
        default="auto",
        show_default=True,
        help="Registry password from a cloud identity: aws (ECR GetAuthorizationToken with the AWS credential "
        "chain); auto uses aws for ECR host names; generic: flags, environment, docker config.",
    )
    plain_http: bool = opt("--plain-http", is_flag=True, help="Talk plain HTTP to the registry.")
    insecure: bool = opt("--insecure", is_flag=True, help="Skip TLS certificate verification.")
    ca_file: str | None = opt(
        "--ca-file", type=click.Path(exists=True, dir_okay=False), help="Extra CA certificates (PEM) to trust."
    )

    def options(self, *, files_may_appear: bool = False) -> RegistryOptions:
        """The registry options.  ``--username-file``/``--password-file`` are checked now and read again at each
        credential lookup, so a long-running ``sync``/``serve`` picks up a rotated Secret (after the registry
        refused the old one).  ``files_may_appear`` (those two commands): a file that does not exist yet (a
        deleted, optional Secret) is logged instead of refused; syncs fail until it exists."""
        if self.username and self.username_file:
            raise UsageError("--username and --username-file are mutually exclusive")
        password = read_password(self.password_stdin, None if files_may_appear else self.password_file)
        for path, option in ((self.username_file, "--username-file"), (self.password_file, "--password-file")):
            if path is not None and files_may_appear and not path.is_file():
                logging.getLogger("specman").warning(
                    "%s %s does not exist (yet): syncs fail until it does", option, path
                )
            elif path is not None:
                read_secret_file(path, option)
        return RegistryOptions(
            username=self.username,
            username_file=self.username_file,
            password=None if self.password_file else password,
            password_file=self.password_file,
            plain_http=self.plain_http,
            insecure=self.insecure,
            ca_file=self.ca_file,
            oci_layout=self.layout,
            provider=self.provider,
        )

    @property
    def layout(self) -> bool:
        return False


@dataclass(frozen=True)
class RegistrySettings(ConnectionSettings):
    """The common registry options: connection settings plus ``--oci-layout``."""

    param: ClassVar[str] = "registry"

    oci_layout: bool = opt(
        "--oci-layout", is_flag=True, help="The reference is PATH[:TAG|@DIGEST] of an OCI image layout."
    )

    @property
    def layout(self) -> bool:
        return self.oci_layout


@dataclass(frozen=True)
class LimitSettings(Settings):
    """``--max-size`` and ``--max-files``: the extraction limits of every command that extracts."""

    param: ClassVar[str] = "limits"

    max_size: int | None = opt(
        "--max-size", type=ByteSize(), help="Refuse archives that extract to more bytes (default 8GiB)."
    )
    max_files: int | None = opt(
        "--max-files", type=click.IntRange(min=1), help="Refuse archives with more entries (default 1000000)."
    )

    def extract_limits(self) -> ExtractLimits:
        defaults = ExtractLimits()
        return ExtractLimits(
            max_bytes=self.max_size or defaults.max_bytes, max_files=self.max_files or defaults.max_files
        )


@dataclass(frozen=True)
class ServerSettings(Settings):
    """What every specman server takes: ``--listen``, TLS, ``--workers`` (subclasses set the defaults)."""

    param: ClassVar[str] = "server"

    listen: str = opt("--listen", default="0.0.0.0:8443", show_default=True, help="Address to serve on.")
    no_tls: bool = opt("--no-tls", is_flag=True, help="Serve plain HTTP (behind a TLS proxy).")
    tls_cert: Path | None = file_opt("--tls-cert", help="Serve with this certificate (PEM).")
    tls_key: Path | None = file_opt("--tls-key", help="The key of --tls-cert (PEM).")
    tls_sans: tuple[str, ...] = opt(
        "--tls-san",
        multiple=True,
        metavar="NAME",
        help="Extra SAN (DNS name or IP) for the generated certificate (repeatable; SPECMAN_TLS_SAN: spaces).",
    )
    tls_min: str = opt(
        "--tls-min",
        type=click.Choice(TLS_VERSIONS),
        default="1.2",
        show_default=True,
        help="Lowest TLS version accepted (1.2: the Mozilla 'intermediate' suites for TLS 1.2, and TLS 1.3).",
    )
    workers: int = opt(
        "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes sharing the port."
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
