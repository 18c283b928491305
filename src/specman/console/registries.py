"""OCI pack registries: their endpoint syntax, and ``validate``, a real check of one with specman's OCI client.

``parse_endpoint`` accepts ``https://HOST[:PORT]``, ``http://HOST[:PORT]`` (plain HTTP) or a bare ``HOST[:PORT]``
(HTTPS), host and port as docker parses them.  ``check_registry`` talks to the registry through
``specman.oci.RegistryClient`` and ``RegistryAuth`` (the same TLS setup, token protocol and error mapping as every
other specman command) and answers a list of ``Check(name, ok, message)``:

* ``endpoint`` — the endpoint parses;
* ``reachable`` — a connection was made and it speaks the registry API (``GET /v2/``);
* ``tls`` — the certificate verified against the system CAs plus ``caCert`` (or plain HTTP, or not verified
  because ``insecureSkipVerify``);
* ``credentials`` — the registry accepted the credentials (``/v2/`` with Basic or a bearer token);
* ``repository`` — only with ``containsSpectroManifests``: ``spectro-packs/spectro-manifests/manifest`` exists
  and has tags (a tag list, which token registries authorise per repository).

Checks after a failed one are reported as not checked.  The registry's credentials are the only ones used: the
console never falls back to its own environment or docker ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from specman.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    SpecmanError,
    TransportError,
    UsageError,
)
from specman.oci import Credentials, RegistryAuth, RegistryClient, RetryPolicy, TLSOptions, parse_reference

__all__ = ["SPECTRO_REPOSITORY", "Check", "RegistryTarget", "check_registry", "parse_endpoint"]

SPECTRO_REPOSITORY: Final = "spectro-packs/spectro-manifests/manifest"
_RETRY: Final = RetryPolicy(attempts=2, timeout=20.0, wait_initial=0.2, wait_max=1.0, wait_jitter=0.2)


def parse_endpoint(value: str) -> tuple[str, bool]:
    """(``host[:port]``, plain_http) for an endpoint; ValueError with the reason when it is not one."""
    text = value.strip()
    plain = False
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            plain = scheme == "http://"
            text = text[len(scheme) :]
            break
    else:
        if "://" in text:
            raise ValueError("the scheme must be https:// or http://")
    text = text.rstrip("/")
    if not text or "/" in text or "@" in text or "?" in text or "#" in text:
        raise ValueError("expected https://HOST[:PORT] (no path, user or query)")
    try:
        ref = parse_reference(f"{text}/probe")
    except UsageError:
        raise ValueError(f"{text!r} is not a registry host[:port]") from None
    if ref.registry != text.lower() and ref.registry != text:
        raise ValueError(f"{text!r} is not a registry host[:port]")
    return text, plain


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class RegistryTarget:
    endpoint: str
    username: str = ""
    password: str = field(default="", repr=False)
    ca_cert: str = ""
    insecure: bool = False
    contains_spectro_manifests: bool = False


def _is_tls_failure(exc: TransportError) -> bool:
    return exc.cause in ("tls", "plain-http")


def _tls_ok(plain: bool, insecure: bool) -> Check:
    if plain:
        return Check("tls", True, "plain HTTP: no TLS")
    if insecure:
        return Check("tls", True, "TLS without certificate verification (insecureSkipVerify)")
    return Check("tls", True, "certificate verified")


def _not_checked(names: list[str], reason: str) -> list[Check]:
    return [Check(name, False, f"not checked: {reason}") for name in names]


def _ping(client: RegistryClient, host: str, plain: bool, insecure: bool, later: list[str]) -> list[Check] | None:
    """The reachable/tls/credentials checks; a full list (ending the validation) when one failed, else None."""
    try:
        client.ping()
    except TransportError as exc:
        if _is_tls_failure(exc) and not plain:
            return [
                Check("reachable", True, f"connected to {host}"),
                Check("tls", False, str(exc)),
                *_not_checked(["credentials", *later], "the TLS check failed"),
            ]
        return [
            Check("reachable", False, str(exc)),
            *_not_checked(["tls", "credentials", *later], f"{host} is not reachable"),
        ]
    except (AuthenticationError, AuthorizationError) as exc:
        return [
            Check("reachable", True, f"{host} speaks the registry API"),
            _tls_ok(plain, insecure),
            Check("credentials", False, str(exc)),
            *_not_checked(later, "the credentials were refused"),
        ]
    except SpecmanError as exc:
        return [
            Check("reachable", False, f"{host} does not answer as an OCI registry: {exc}"),
            *_not_checked(["tls", "credentials", *later], f"{host} is not a registry"),
        ]
    return None


def _repository(client: RegistryClient, checks: list[Check]) -> list[Check]:
    repository = client.repository(SPECTRO_REPOSITORY)
    try:
        tags = list(islice(repository.tags(), 1000))
    except AuthenticationError as exc:
        checks[-1] = Check("credentials", False, str(exc))
        return [*checks, *_not_checked(["repository"], "the credentials were refused")]
    except NotFoundError:
        return [*checks, Check("repository", False, f"repository {SPECTRO_REPOSITORY} not found")]
    except SpecmanError as exc:
        return [*checks, Check("repository", False, f"repository {SPECTRO_REPOSITORY}: {exc}")]
    if not tags:
        return [*checks, Check("repository", False, f"repository {SPECTRO_REPOSITORY} has no tags")]
    shown = ", ".join(sorted(tags)[:10]) + (", ..." if len(tags) > 10 else "")
    return [*checks, Check("repository", True, f"repository {SPECTRO_REPOSITORY} has {len(tags)} tag(s): {shown}")]


def check_registry(target: RegistryTarget) -> list[Check]:
    """Validate ``target`` against the real registry (blocking; a few seconds at most per unreachable host)."""
    later = ["repository"] if target.contains_spectro_manifests else []
    try:
        host, plain = parse_endpoint(target.endpoint)
    except ValueError as exc:
        return [
            Check("endpoint", False, str(exc)),
            *_not_checked(["reachable", "tls", "credentials", *later], "the endpoint is invalid"),
        ]
    checks = [Check("endpoint", True, f"{'http' if plain else 'https'}://{host}")]
    credentials = Credentials(target.username, target.password) if target.username or target.password else None
    try:
        tls = TLSOptions(plain_http=plain, insecure=target.insecure, ca_data=target.ca_cert.strip() or None)
        with RegistryClient(host, tls=tls, auth=RegistryAuth(credentials), retry=_RETRY, timeout=10.0) as client:
            failed = _ping(client, host, plain, target.insecure, later)
            if failed is not None:
                return [*checks, *failed]
            message = "accepted" if credentials else "anonymous access allowed"
            checks += [
                Check("reachable", True, f"{host} speaks the registry API"),
                _tls_ok(plain, target.insecure),
                Check("credentials", True, message),
            ]
            return _repository(client, checks) if target.contains_spectro_manifests else checks
    except TransportError as exc:  # the CA certificate could not be loaded
        return [
            *checks,
            Check("tls", False, str(exc)),
            *_not_checked(["reachable", "credentials", *later], "the CA certificate cannot be used"),
        ]
