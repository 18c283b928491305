"""The ``Repository`` interface and ``open_repository``: one way to reach a remote repository or a layout.

``RegistryOptions`` gathers the common registry options of the CLI (``-u`` or ``--username-file``, password,
``--plain-http``, ``--insecure``, ``--ca-file``, ``--oci-layout``).  Credentials are resolved lazily per host in
the order flags → environment (``SPECMAN_USERNAME``/``SPECMAN_PASSWORD``) → docker ``config.json``, so a registry that
never asks is never looked up.  ``provider`` (``--provider``) replaces that lookup by a cloud's credential provider
(``specman.oci.providers``): ``aws`` always, ``auto`` for ECR host names when no username/password is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from specman.errors import CredentialsError, UsageError
from specman.oci.auth import RegistryAuth
from specman.oci.blob import BlobReader, Progress
from specman.oci.client import RegistryClient
from specman.oci.credentials import Credentials, DockerConfig
from specman.oci.http import RetryPolicy, TLSOptions
from specman.oci.layout import LayoutRepository, parse_layout_reference
from specman.oci.manifest import Descriptor, Manifest
from specman.oci.providers import PROVIDERS, AwsSettings, CredentialProvider, detect_provider, make_provider
from specman.oci.reference import Reference, parse_reference

__all__ = ["RegistryOptions", "Repository", "Target", "open_repository", "open_target"]


class Repository(Protocol):
    """What specman needs of a repository; implemented by ``RemoteRepository`` and ``LayoutRepository``."""

    name: str
    display: str

    def tags(self, *, page_size: int | None = None) -> Iterator[str]: ...
    def resolve(self, reference: str) -> Descriptor: ...
    def fetch_manifest(self, reference: str) -> Manifest: ...
    def push_manifest(self, reference: str, data: bytes, media_type: str) -> str: ...
    def delete_manifest(self, digest: str) -> None: ...
    def blob_exists(self, desc: Descriptor) -> bool: ...
    def open_blob(self, desc: Descriptor, *, progress: Progress | None = None) -> BlobReader: ...
    def push_blob(
        self,
        desc: Descriptor,
        source: Path | bytes,
        *,
        progress: Progress | None = None,
        mount_from: str | None = None,
    ) -> bool: ...
    def push_file(
        self,
        path: Path,
        media_type: str,
        *,
        annotations: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Descriptor: ...
    def check_push(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RegistryOptions:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # read at each credential lookup (after an auth failure: again)
    username_file: Path | None = None  # likewise (a mounted Secret's ``username`` key)
    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    ca_data: str | None = None  # PEM text trusted on top of ca_file
    oci_layout: bool = False
    oauth2: bool = False
    docker_config: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    provider: str = "auto"  # auto | generic | aws (--provider, SPECMAN_PROVIDER)
    aws: AwsSettings | None = None  # explicit AWS keys / role (the console's registry form)

    @property
    def explicit_credentials(self) -> bool:
        """A username or password given by flag, ``SPECMAN_USERNAME``/``SPECMAN_PASSWORD``, or a username/password
        file that exists (the Kubernetes base mounts an optional Secret: absent, an ECR source uses AWS)."""
        files = (self.username_file, self.password_file)
        env = (os.environ.get("SPECMAN_USERNAME"), os.environ.get("SPECMAN_PASSWORD"))
        return bool(self.username or self.password) or any(f is not None and f.exists() for f in files) or any(env)

    def provider_name(self, host: str) -> str:
        """The provider ``host`` gets: ``generic`` (flags → environment → docker config), or a cloud's name."""
        if self.provider not in PROVIDERS:
            raise UsageError(f"--provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        name = self.provider
        if name == "auto":
            detected = detect_provider(host)
            name = detected if detected is not None and not self.explicit_credentials else "generic"
        elif name != "generic" and self.explicit_credentials and self.aws is None:
            raise UsageError(
                f"--provider {name} gets the registry password from {name.upper()}: "
                "drop the username/password options (and SPECMAN_USERNAME/SPECMAN_PASSWORD)"
            )
        return name

    def provider_for(self, host: str) -> CredentialProvider | None:
        """The cloud credential provider for ``host`` (its SDK imported now), or None for ``generic``."""
        name = self.provider_name(host)
        return None if name == "generic" else make_provider(name, aws=self.aws)

    @property
    def tls(self) -> TLSOptions:
        return TLSOptions(
            plain_http=self.plain_http, insecure=self.insecure, ca_file=self.ca_file, ca_data=self.ca_data
        )

    def credentials_for(self, host: str) -> Credentials | None:
        """Flags (``username_file``/``password_file`` read now: a rotated Secret applies), then the environment, then
        docker's config."""
        if self.username_file is not None or self.password_file is not None:
            username = _read_secret(self.username_file, "username").strip() if self.username_file else self.username
            password = _read_secret(self.password_file, "password") if self.password_file else self.password
            return Credentials(username or "", password or os.environ.get("SPECMAN_PASSWORD") or "")
        if self.username or self.password:  # -u alone (or SPECMAN_USERNAME): the password from SPECMAN_PASSWORD
            return Credentials(self.username or "", self.password or os.environ.get("SPECMAN_PASSWORD") or "")
        env_user, env_pass = os.environ.get("SPECMAN_USERNAME"), os.environ.get("SPECMAN_PASSWORD")
        if env_user or env_pass:
            return Credentials(env_user or "", env_pass or "")
        return DockerConfig(self.docker_config).get(host)


def _read_secret(path: Path, what: str) -> str:
    """A credential file's text without its line ending; CredentialsError when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot read the {what} file {path}: {exc}") from None


@dataclass(frozen=True)
class Target:
    """A parsed command-line target: the repository plus the tag or digest it names (if any)."""

    repository: Repository
    tag: str | None
    digest: str | None
    reference: Reference | None

    @property
    def ref(self) -> str:
        return self.digest or self.tag or "latest"


def open_repository(ref: Reference, options: RegistryOptions) -> Repository:
    """A ``RemoteRepository`` for ``ref`` with a client built from ``options``."""
    provider = options.provider_for(ref.api_host)
    if provider is not None:
        auth = RegistryAuth(
            provider.credentials, oauth2=options.oauth2, on_refused=provider.refused, preemptive_basic=True
        )
    else:
        auth = RegistryAuth(options.credentials_for, oauth2=options.oauth2)
    client = RegistryClient(ref.api_host, tls=options.tls, auth=auth, retry=options.retry, timeout=options.timeout)
    return client.repository(ref.repository)


def open_target(
    value: str, options: RegistryOptions, *, create_layout: bool = False, default_tag: str | None = "latest"
) -> Target:
    """Parse ``value`` as a registry reference, or as ``PATH[:TAG|@DIGEST]`` with ``--oci-layout``."""
    if options.oci_layout:
        path, tag, digest = parse_layout_reference(value)
        if not create_layout and not path.is_dir():
            raise UsageError(f"OCI layout {path} does not exist")
        layout = LayoutRepository(path, create=create_layout)
        return Target(layout, tag or (None if digest else default_tag), digest, None)
    ref = parse_reference(value, default_tag=default_tag)
    return Target(open_repository(ref, options), ref.tag, ref.digest, ref)
