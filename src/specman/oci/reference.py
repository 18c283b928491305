"""References and digests, parsed exactly as docker and oras parse them.

A reference is ``[HOST[:PORT]/]NAME[:TAG][@DIGEST]``.  The first path component is a registry host when it
contains a ``.`` or a ``:``, is ``localhost``, or is a bracketed IPv6 address; otherwise the reference is on
Docker Hub (``docker.io``, with ``library/`` for single-component names), as docker does.  Names follow the
distribution grammar (lowercase components separated by ``/``, with ``.``, ``_``, ``__`` or ``-`` inside),
tags ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; digests must be ``sha256:`` followed by 64 lowercase hex digits.

This module owns parsing and formatting only; it performs no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from specman.errors import UsageError

__all__ = [
    "DEFAULT_REPOSITORY",
    "DOCKER_HUB",
    "Reference",
    "parse_digest",
    "parse_reference",
    "parse_repository",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_REPOSITORY = "spectro-packs/spectro-manifests/manifest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(?::[0-9]{1,5})?"
)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_NAME = 255


def parse_digest(value: str) -> str:
    """Return ``value`` if it is a valid sha256 digest, else raise ``UsageError`` saying why."""
    if _DIGEST_RE.fullmatch(value):
        return value
    algorithm, sep, hexpart = value.partition(":")
    if not sep:
        raise UsageError(f"invalid digest {value!r}: expected 'sha256:' followed by 64 hex digits")
    if algorithm != "sha256":
        raise UsageError(f"unsupported digest algorithm {algorithm!r} in {value!r}: only sha256 is accepted")
    raise UsageError(f"invalid digest {value!r}: sha256 needs 64 lowercase hex digits, got {len(hexpart)} characters")


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``registry`` (``host[:port]``), ``repository``, and an optional tag/digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host serving the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag (``latest`` by default)."""
        return self.digest or self.tag or "latest"

    @property
    def repo(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r}: tags are [A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=parse_digest(digest))

    def __str__(self) -> str:
        text = self.repo
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_host(value: str) -> tuple[str, str]:
    first, sep, rest = value.partition("/")
    if sep and (("." in first or ":" in first or first == "localhost") or first.startswith("[")):
        if not _HOST_RE.fullmatch(first):
            raise UsageError(f"invalid registry host {first!r} in reference {value!r}")
        port = first.rpartition("]:")[2] if first.startswith("[") else first.rpartition(":")[2]
        if ":" in first.rstrip("]") and port.isdigit() and not 0 < int(port) < 65536:
            raise UsageError(f"invalid port {port} in reference {value!r}")
        return first, rest
    return DOCKER_HUB, value


def _check_name(name: str, original: str) -> str:
    if not name:
        raise UsageError(f"invalid reference {original!r}: repository name is empty")
    if len(name) > _MAX_NAME:
        raise UsageError(f"invalid reference {original!r}: repository name longer than {_MAX_NAME} characters")
    if not _NAME_RE.fullmatch(name):
        hint = " (must be lowercase)" if name.lower() != name else ""
        raise UsageError(f"invalid repository name {name!r} in reference {original!r}{hint}")
    return name


def parse_reference(value: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``[HOST[:PORT]/]NAME[:TAG][@DIGEST]`` as docker does.

    With neither tag nor digest the tag is ``default_tag`` (``latest``, like docker; ``None`` to keep it unset).
    """
    original = value
    value = value.strip()
    if not value or value != original or any(ch.isspace() for ch in value):
        raise UsageError(f"invalid reference {original!r}: empty or contains white space")
    digest: str | None = None
    if "@" in value:
        value, _, digest_text = value.partition("@")
        digest = parse_digest(digest_text)
    registry, remainder = _split_host(value)
    tag: str | None = None
    name = remainder
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r} in reference {original!r}")
    _check_name(name, original)
    if registry == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry=registry, repository=name, tag=tag, digest=digest)


def parse_repository(value: str) -> Reference:
    """Parse a repository reference (``HOST[:PORT]/NAME``) that must carry neither tag nor digest."""
    ref = parse_reference(value, default_tag=None)
    if ref.tag or ref.digest:
        raise UsageError(f"expected a repository without tag or digest, got {value!r}")
    return ref
