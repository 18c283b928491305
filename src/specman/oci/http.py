"""The one place specman talks HTTP to registries: TLS, timeouts, retries and error mapping.

* ``TLSOptions`` / ``make_client``: an ``httpx.Client`` that trusts the system CAs (plus ``--ca-file``), or
  skips verification (``--insecure``), with timeouts on every phase and a low-speed limit
  (``lowspeed.py``).  OpenSSL's own ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` select the system store as they do for curl and Go tools; requests' ``REQUESTS_CA_BUNDLE``
  is ignored unless ``TLSOptions.trust_env_ca`` asks for it.
* ``map_transport_errors``: turns httpx/OS exceptions into ``specman.errors.TransportError`` with one line
  naming the host and the cause (like httpx's ``map_httpcore_exceptions``).
* ``send``: one request with retries (exponential backoff with jitter, via stamina) for idempotent methods
  only, on connection failures and on 429/502/503/504, honouring ``Retry-After``.
* ``raise_for_registry_error``: maps a registry error reply (status + distribution ``errors`` JSON) onto the
  exception tree, keeping the registry's code and message.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import httpx
import stamina
import stamina.instrumentation

from specman import __version__
from specman.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    TransportCause,
    TransportError,
)
from specman.oci.auth import merge_scopes
from specman.oci.lowspeed import LowSpeedTimeout, LowSpeedTransport, proxy_mounts

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "TLSOptions",
    "describe_transport_error",
    "make_client",
    "map_transport_errors",
    "raise_for_registry_error",
    "send",
    "stop_retrying",
    "transport_error",
]

USER_AGENT = f"specman/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class TLSOptions:
    """How to secure connections: ``plain_http`` (no TLS), ``insecure`` (TLS without verification),
    ``ca_file`` (extra trusted CAs on top of the system store)."""

    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    trust_env_ca: bool = False
    ca_data: str | None = field(default=None, repr=False)  # PEM text, e.g. a CA the console stores

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        ctx = ssl.create_default_context()
        if self.trust_env_ca and (path := os.environ.get("REQUESTS_CA_BUNDLE")):
            ctx.load_verify_locations(cafile=path)
        if self.ca_file:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"cannot load CA file {self.ca_file}: {exc}") from None
        if self.ca_data:
            try:
                ctx.load_verify_locations(cadata=self.ca_data)
            except (ValueError, ssl.SSLError) as exc:
                raise TransportError(f"cannot load the CA certificate given as PEM text: {exc}") from None
        return ctx


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    timeout: float = 120.0
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 1.0


def make_client(
    tls: TLSOptions,
    *,
    auth: httpx.Auth | None = None,
    timeout: float = 30.0,
    verify: ssl.SSLContext | bool | None = None,
) -> httpx.Client:
    """The one way specman builds an HTTP client: timeouts on every phase, and a low-speed limit so a trickling
    server cannot hold it forever.  ``verify`` passes a context already made from ``tls`` (clients of one site in
    several threads share it: loading the system CAs costs a few MiB and milliseconds each time)."""
    verify = tls.ssl_context() if verify is None else verify
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
    return httpx.Client(
        verify=verify,
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        limits=limits,
        transport=LowSpeedTransport(verify=verify, limits=limits),
        mounts=proxy_mounts(verify, limits),
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (httpx and httpcore re-raise with ``from``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_transport_error(exc: BaseException) -> tuple[TransportCause, str]:
    """What a transport failure was, decided by the types in its chain (never by its text), and one short line for
    it: TLS verification, plain HTTP spoken to TLS, refused, reset, the low-speed limit."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return "tls", f"TLS certificate verification failed: {link.verify_message or link.reason}"
        if isinstance(link, ssl.SSLError):
            if link.reason == "WRONG_VERSION_NUMBER":
                return "plain-http", "TLS handshake failed: the server does not speak TLS (is it plain HTTP?)"
            return "tls", f"TLS handshake failed: {link.reason or type(link).__name__}"
        if isinstance(link, ConnectionRefusedError):
            return "refused", "connection refused"
        if isinstance(link, ConnectionResetError):
            return "reset", "connection reset by peer"
        if isinstance(link, LowSpeedTimeout):
            return "lowspeed", str(link)
    return "other", str(exc) or type(exc).__name__


def describe_transport_error(exc: BaseException) -> str:
    """One short line for a transport failure (see ``classify_transport_error``)."""
    return classify_transport_error(exc)[1]


_HINTS: Final[dict[TransportCause, str]] = {"tls": "use --ca-file or --insecure", "plain-http": "try --plain-http"}


def transport_error(
    host: str, exc: BaseException, kind: Literal["timeout", "connect", "broken", "other"], reason: str | None = None
) -> TransportError:
    """The one line specman says for a transport failure of ``kind`` reaching ``host`` (``reason`` overrides the
    classified line); shared by the httpx clients and migrate's aiohttp tree reader.  The error's ``cause`` and
    operator ``hint`` come from the classification."""
    cause, text = classify_transport_error(exc)
    if kind == "timeout":
        detail = f": {text}" if cause == "lowspeed" else ""  # the low-speed limit says what it measured
        return TransportError(f"{host}: timed out ({type(exc).__name__}{detail})", cause=cause if detail else "timeout")
    reason = reason or text
    hint = _HINTS.get(cause)
    if kind == "connect":
        return TransportError(f"cannot connect to {host}: {reason}", cause=cause, hint=hint)
    if kind == "broken":
        return TransportError(f"{host}: connection broken: {reason}", cause="broken" if cause == "other" else cause)
    return TransportError(f"{host}: {reason}", cause=cause, hint=hint)


@contextlib.contextmanager
def map_transport_errors(host: str) -> Iterator[None]:
    """Map httpx and OS transport failures to ``TransportError`` naming ``host``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise transport_error(host, exc, "timeout") from exc
    except httpx.ConnectError as exc:
        raise transport_error(host, exc, "connect") from exc
    except httpx.RemoteProtocolError as exc:
        raise transport_error(host, exc, "broken") from exc
    except (httpx.TransportError, OSError) as exc:
        raise transport_error(host, exc, "other") from exc


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER))


log = logging.getLogger("specman.oci")


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    log.info("retrying in %.1f s (retry %d): %s", details.wait_for, details.retry_num, details.caused_by)


# stamina's default hooks log every retry as a warning through the root logger; specman logs them itself.
stamina.instrumentation.set_on_retry_hooks([_log_retry])


_STOPPING = threading.Event()


def stop_retrying() -> None:
    """The process is stopping: from now on a failed request is not retried (also in a retry loop under way),
    so a sync against an unreachable registry ends at its next failure instead of after all its back-offs."""
    _STOPPING.set()


def _backoff_hook(exc: Exception) -> bool | float:
    if isinstance(exc, _RetryableStatus):  # never raised once stopping (``send`` returns the response then)
        delay = retry_after_seconds(exc.response)
        return delay if delay is not None else True
    return isinstance(exc, TransportError) and not _STOPPING.is_set()


def send(
    client: httpx.Client,
    request: httpx.Request,
    *,
    stream: bool = False,
    policy: RetryPolicy | None = None,
    retry: bool | None = None,
) -> httpx.Response:
    """Send ``request``, retrying transient failures when the method is idempotent (or ``retry`` says so).

    The returned response is open (``stream=True``) or fully read.  Retryable statuses that persist are
    returned to the caller, who maps them with ``raise_for_registry_error``.
    """
    policy = policy or RetryPolicy()
    host = request.url.netloc.decode("ascii")
    retrying = retry if retry is not None else request.method in IDEMPOTENT
    attempts = policy.attempts if retrying else 1
    for attempt in stamina.retry_context(
        on=_backoff_hook,
        attempts=attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            with map_transport_errors(host):
                response = client.send(request, stream=True)
            if response.status_code in RETRY_STATUSES and attempt.num < attempts and not _STOPPING.is_set():
                response.close()
                raise _RetryableStatus(response)
            if not stream:
                with map_transport_errors(host):
                    response.read()
            return response
    raise AssertionError("unreachable: the last attempt returns its response or stamina re-raises")


_SPEAKS_HTTPS: Final = "the registry speaks HTTPS, not plain HTTP"


def _registry_errors(response: httpx.Response) -> tuple[str | None, str]:
    """The first distribution error code and a message from an error reply."""
    try:
        body = response.read()
    except httpx.HTTPError:
        body = b""
    code: str | None = None
    message = ""
    try:
        obj = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("errors"), list) and obj["errors"]:
        first = obj["errors"][0]
        if isinstance(first, dict):
            code = str(first.get("code") or "") or None
            message = str(first.get("message") or "")
            detail = first.get("detail")
            if code == "NAME_UNKNOWN" and isinstance(detail, dict) and detail.get("name"):
                message = f"{message}: {detail['name']}"
    elif b"HTTP request to an HTTPS server" in body:
        message = _SPEAKS_HTTPS
    elif body:
        kind = response.headers.get("content-type", "").split(";")[0]
        message = "HTML page" if "html" in kind or body.lstrip()[:1] == b"<" else "non-JSON reply"
    return code, message


def raise_for_registry_error(response: httpx.Response, what: str) -> None:
    """Raise the matching ``RegistryError`` when ``response`` is not a success; ``what`` names the operation."""
    status = response.status_code
    if status < 400:
        return
    code, message = _registry_errors(response)
    detail = f"{code or status}{': ' + message if message else ''}"
    text = f"{what}: {detail}"
    challenge = response.headers.get("WWW-Authenticate", "")
    if status == 401 and 'error="insufficient_scope"' in challenge:
        scope = merge_scopes(challenge.split('scope="', 1)[-1].split('"', 1)[0]) if 'scope="' in challenge else ""
        raise AuthorizationError(
            f"{what}: denied (insufficient_scope: the credentials do not grant {scope or 'this operation'})",
            status=status,
            code="DENIED",
        )
    if status == 401:
        raise AuthenticationError(
            f"{what}: unauthorized ({message or 'authentication required'})",
            status=status,
            code=code or "UNAUTHORIZED",
        )
    if status == 403:
        raise AuthorizationError(
            f"{what}: denied ({message or 'access forbidden'})", status=status, code=code or "DENIED"
        )
    if status == 404:
        raise NotFoundError(
            f"{what}: not found ({code or status}{': ' + message if message else ''})",
            status=status,
            code=code,
        )
    if status == 429:
        raise RateLimitedError(
            f"{what}: too many requests (TOOMANYREQUESTS), retries exhausted",
            status=status,
            code=code or "TOOMANYREQUESTS",
        )
    if code is None and message in ("HTML page", "non-JSON reply"):
        article = "an" if message.startswith("HTML") else "a"
        raise ProtocolError(
            f"{what}: HTTP {status} with {article} {message} instead of a registry error", status=status
        )
    raise RegistryError(
        text if code else f"{what}: HTTP {status}{' (' + message + ')' if message else ''}",
        status=status,
        code=code,
        hint="drop --plain-http" if message == _SPEAKS_HTTPS else None,
    )
