"""AWS: ECR registry passwords from the standard AWS credential chain, via botocore.

For a registry host, ``AwsProvider.credentials`` returns ``AWS`` + the password of ECR's ``GetAuthorizationToken``
for the registry's account and region (both read from an ECR host name,
``<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`` and the other partitions; for another host named with
``--provider aws``, the region comes from ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile and no account is
sent).  The AWS credentials come from botocore's chain: environment keys (with session token), shared
config/credentials files and profiles (assume-role, SSO, ``credential_process``), a web identity token file with a
role ARN (EKS IRSA), the container credentials endpoint (EKS Pod Identity, ECS), EC2 instance metadata — or, for a
registry configured in the console, an access key and secret, and a role assumed with STS (``AwsSettings``).
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL_STS`` are botocore's own (≥ 1.31).  Requests
are signed by botocore: specman has no SigV4 of its own.

Caching: a token is reused until half its lifetime has passed (as amazon-ecr-credential-helper does: 6 h of a 12 h
token), then fetched again; a token whose ``expiresAt`` is already past when it arrives (a skewed clock, or moto)
is reused for ``PAST_EXPIRY_REUSE`` seconds so that a sync does not ask ECR for every request.  When the refresh
fails while the cached token has not expired yet, the cached one is used (logged).  ``refused`` (the registry
answered 401/403) drops the cached token, so the next request gets a new one.

botocore is imported when the first ``AwsProvider`` is made, never at specman's start-up.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from specman.errors import ProviderError
from specman.oci.credentials import Credentials

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.session import Session

__all__ = ["PAST_EXPIRY_REUSE", "AwsProvider", "AwsSettings", "EcrHost", "parse_ecr_host"]

log = logging.getLogger("specman.oci")

# amazon-ecr-credential-helper, ecr-login/api/client.go: anchored, on the host name without its port
_ECR_HOST: Final = re.compile(
    r"^(\d{12})\.dkr[\.\-]ecr(\-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\.(amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|"
    r"amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$"
)
PAST_EXPIRY_REUSE: Final = 30.0
_ORIGIN: Final = "AWS ECR GetAuthorizationToken"


@dataclass(frozen=True)
class EcrHost:
    """What an ECR registry host name says: the account (registry id), the region, FIPS, dual-stack."""

    account: str
    region: str
    fips: bool
    dualstack: bool


def parse_ecr_host(host: str) -> EcrHost | None:
    """``123456789012.dkr.ecr.eu-west-1.amazonaws.com[:443]`` → ``EcrHost``; None for any other host."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    match = _ECR_HOST.match(name.lower())
    if match is None:
        return None
    return EcrHost(match.group(1), match.group(3), bool(match.group(2)), match.group(4).startswith("on."))


@dataclass(frozen=True)
class AwsSettings:
    """Explicit AWS credentials (the console's registry form) instead of, or on top of, the ambient chain:
    an access key id + secret, and/or a role to assume with STS (``role_arn``, optional ``external_id``)."""

    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    role_arn: str = ""
    external_id: str = ""
    region: str = ""  # overrides AWS_REGION / AWS_DEFAULT_REGION / the profile for non-ECR host names

    @property
    def source(self) -> str:
        """Where the AWS credentials come from, for messages."""
        keys = f"access key {self.access_key_id}" if self.access_key_id else "the AWS credential chain"
        return f"role {self.role_arn} assumed with {keys}" if self.role_arn else keys


@dataclass(frozen=True)
class _Token:
    credentials: Credentials
    expires_at: float  # Unix seconds
    refresh_at: float


def _decode_token(data: dict[str, Any], what: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(str(data["authorizationToken"]), validate=True).decode()
    except (KeyError, binascii.Error, UnicodeDecodeError):
        raise ProviderError(f"AWS: {what}: the authorization token is not base64 'user:password'") from None
    user, sep, password = decoded.partition(":")  # split on the first ':' only, as the ECR helper does
    if not sep or not user or not password:
        raise ProviderError(f"AWS: {what}: the authorization token is not 'user:password'")
    return user, password


class AwsProvider:
    """ECR passwords for registry hosts; thread-safe; one botocore session, one ECR client per region."""

    name = "aws"

    def __init__(self, settings: AwsSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        from specman.oci.providers import _aws_boto  # botocore: imported only now

        self.settings = settings or AwsSettings()
        self._boto = _aws_boto
        self._clock = clock
        self._lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._session: Session | None = None
        self._clients: dict[tuple[str, bool, bool], BaseClient] = {}
        self._tokens: dict[str, _Token] = {}
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"AwsProvider({self.settings!r})"

    # -- where -----------------------------------------------------------------------------------------------------
    def _target(self, host: str) -> tuple[EcrHost, str]:
        """The ECR host facts for ``host`` (the account empty when the name does not say it) and a cache key."""
        ecr = parse_ecr_host(host)
        if ecr is not None:
            return ecr, f"{ecr.region}/{ecr.account}"
        region = self.settings.region or self._session_region()
        if not region:
            raise ProviderError(
                f"AWS: cannot tell the region of registry {host} (not an ECR host name): "
                "set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile)"
            )
        return EcrHost("", region, False, False), f"{region}/"

    def _session_region(self) -> str:
        with self._boto.mapped("reading the AWS configuration", "", self.settings):
            return str(self._get_session("").get_config_variable("region") or "")

    # -- credentials -----------------------------------------------------------------------------------------------
    def credentials(self, host: str) -> Credentials:
        ecr, key = self._target(host)
        with self._lock:  # one GetAuthorizationToken at a time, shared by every thread of a sync
            cached = self._tokens.get(key)
            now = self._clock()
            if cached is not None and now < cached.refresh_at:
                return cached.credentials
            try:
                token = self._fetch(host, ecr)
            except ProviderError as exc:
                if cached is None or now >= cached.expires_at:
                    raise
                log.warning(
                    "AWS: could not refresh the ECR password, using the cached one until it expires",
                    extra={"fields": {"registry": host, "error": str(exc)}},
                )
                return cached.credentials
            self._tokens[key] = token
            return token.credentials

    def refused(self, host: str, credentials: Credentials) -> None:
        try:
            _ecr, key = self._target(host)
        except ProviderError:
            return
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.credentials == credentials:
                del self._tokens[key]

    def _fetch(self, host: str, ecr: EcrHost) -> _Token:
        what = f"ECR GetAuthorizationToken for {host}"
        client = self._client(ecr)
        kwargs: dict[str, Any] = {"registryIds": [ecr.account]} if ecr.account else {}
        asked = self._clock()
        with self._boto.mapped(what, host, self.settings):
            reply: dict[str, Any] = client.get_authorization_token(**kwargs)  # type: ignore[attr-defined]
        self.token_requests += 1
        entries = reply.get("authorizationData") or []
        if not entries or not isinstance(entries[0], dict):
            raise ProviderError(f"AWS: {what}: the answer has no authorizationData")
        data = entries[0]
        user, password = _decode_token(data, what)
        expires = data.get("expiresAt")
        expires_at = expires.timestamp() if isinstance(expires, datetime) else asked + 12 * 3600.0
        lifetime = expires_at - asked
        if lifetime <= 0:
            log.warning(
                f"AWS: the ECR password arrived already expired (a skewed clock?): reusing it {PAST_EXPIRY_REUSE:.0f}s",
                extra={"fields": {"registry": host, "expiresAt": expires.isoformat() if expires else ""}},
            )
        reuse = lifetime / 2 if lifetime > 0 else PAST_EXPIRY_REUSE
        log.info(
            "AWS: new ECR password",
            extra={"fields": {"registry": host, "region": ecr.region, "expiresIn": f"{max(lifetime, 0):.0f}s"}},
        )
        creds = Credentials(user, password, origin=_ORIGIN, refresh_at=asked + reuse)
        return _Token(creds, expires_at, asked + reuse)

    # -- botocore ----------------------------------------------------------------------------------------------------
    def _get_session(self, region: str) -> Session:
        """The one session of this provider (``region``: where to call STS for a role, when one is assumed)."""
        with self._session_lock:
            if self._session is None:
                self._session = self._boto.make_session(self.settings, region)
            return self._session

    def _client(self, ecr: EcrHost) -> BaseClient:
        key = (ecr.region, ecr.fips, ecr.dualstack)
        client = self._clients.get(key)
        if client is None:
            with self._boto.mapped("creating the ECR client", "", self.settings):
                client = self._boto.ecr_client(self._get_session(ecr.region), ecr.region, ecr.fips, ecr.dualstack)
            self._clients[key] = client
        return client
