"""The registry commands: ``push``, ``pull``, ``extract``, ``tags``, ``login``, ``logout`` (as oras and docker do).

They take the shared registry settings (``RegistrySettings``: credentials, TLS, ``--oci-layout``) and extraction
limits (``LimitSettings``) of ``specman.cli.options``.  Passwords are read from stdin (``--password-stdin``), a file
(``--password-file``) or ``SPECMAN_PASSWORD`` — never from argv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from specman.archive import extract_archive
from specman.cli.options import (
    ConnectionSettings,
    LimitSettings,
    RegistrySettings,
    check_dest,
    open_source,
    read_password,
    read_secret_file,
)
from specman.cli.settings import uses
from specman.cli.ui import UI
from specman.errors import UsageError
from specman.oci import RegistryClient, RegistryOptions, open_target, parse_reference, pull_artifact, push_artifact
from specman.oci.auth import RegistryAuth
from specman.oci.credentials import Credentials, DockerConfig
from specman.oci.reference import DOCKER_HUB

__all__ = ["extract", "login", "logout", "pull", "push", "tags"]

_FORCE = click.option(
    "--force", is_flag=True, envvar="SPECMAN_FORCE", help="Replace DEST if it exists and is not empty."
)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("ref")
@uses(RegistrySettings)
@click.option(
    "--mtime",
    type=int,
    default=0,
    show_default=True,
    envvar="SPECMAN_MTIME",
    help="Timestamp stored for every archive member.",
)
@click.pass_obj
def push(ui: UI, /, source: Path, ref: str, mtime: int, registry: RegistrySettings) -> None:
    """Push SOURCE (a directory, packed as manifests.tgz, or a file) to REF; prints the manifest digest."""
    target = open_target(ref, registry.options(), create_layout=True)
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


@click.command()
@click.argument("ref")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@uses(RegistrySettings, LimitSettings)
@_FORCE
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
    force: bool,
    no_extract: bool,
    registry: RegistrySettings,
    limits: LimitSettings,
) -> None:
    """Download REF, verify every digest and extract it safely into DEST."""
    target = open_target(ref, registry.options())  # a malformed REF is a usage error, whatever DEST holds
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
                limits=limits.extract_limits(),
                start_progress=start,
            )
    finally:
        target.repository.close()
    ui.status(
        f"Pulled {target.repository.display}:{target.ref}: {result.files} files, {result.bytes} bytes into {dest}"
    )
    ui.result(result.digest)


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@uses(LimitSettings)
@_FORCE
@click.pass_obj
def extract(ui: UI, archive: Path, dest: Path, force: bool, limits: LimitSettings) -> None:
    """Extract ARCHIVE (tar, tar.gz or tar.zst) safely into DEST."""
    check_dest(dest, force)
    with open(archive, "rb") as fh:
        result = extract_archive(fh, dest, limits=limits.extract_limits(), replace=force)
    ui.status(f"Extracted {result.files} files ({result.bytes} bytes) into {dest}")


@click.command()
@click.argument("repo")
@uses(RegistrySettings)
@click.option(
    "--page-size",
    envvar="SPECMAN_PAGE_SIZE",
    type=click.IntRange(min=1, max=10000),
    help="Tags per request (the registry's n parameter).",
)
@click.pass_obj
def tags(ui: UI, /, repo: str, page_size: int | None, registry: RegistrySettings) -> None:
    """List the tags of REPO."""
    repository = open_source(repo, registry.options())
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


@click.command()
@click.argument("registry")
@uses(ConnectionSettings)
@click.pass_obj
def login(ui: UI, registry: str, connection: ConnectionSettings) -> None:
    """Check credentials against REGISTRY and save them in the docker config.json."""
    host = _registry_host(registry)
    username = connection.username
    if connection.username_file is not None:
        username = username or read_secret_file(connection.username_file, "--username-file").strip()
    password = read_password(connection.password_stdin, connection.password_file)
    if password is None:
        password = os.environ.get("SPECMAN_PASSWORD")
    if not username:
        if not sys.stdin.isatty() or connection.password_stdin:
            raise UsageError("login needs --username (or SPECMAN_USERNAME)")
        username = click.prompt("Username")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("login needs --password-stdin, --password-file or SPECMAN_PASSWORD")
        password = click.prompt("Password", hide_input=True)
    creds = Credentials(username, password)
    options = RegistryOptions(
        plain_http=connection.plain_http, insecure=connection.insecure, ca_file=connection.ca_file
    )
    with RegistryClient(
        host if host != DOCKER_HUB else "registry-1.docker.io", tls=options.tls, auth=RegistryAuth(creds)
    ) as client:
        client.ping()
    where = DockerConfig().store(host, creds)
    ui.status(f"Login Succeeded (credentials saved in {where})")


@click.command()
@click.argument("registry")
@click.pass_obj
def logout(ui: UI, registry: str) -> None:
    """Remove the saved credentials of REGISTRY."""
    host = _registry_host(registry)
    if DockerConfig().erase(host):
        ui.status(f"Removed login credentials for {host}")
    else:
        ui.status(f"Not logged in to {host}")
