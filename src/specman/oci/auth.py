"""Registry authentication as an ``httpx.Auth`` generator flow (no I/O of its own, like httpx's auth).

One ``RegistryAuth`` serves every host of a client:

* anonymous, or HTTP Basic when the registry challenges with ``Basic``;
* Bearer tokens (the docker token protocol): on a ``401`` with ``WWW-Authenticate: Bearer realm=..,
  service=..,scope=..`` it asks the realm for a token — ``GET ?service=&scope=`` with Basic credentials (or
  none, anonymously), or the OAuth2 ``POST`` with ``grant_type=refresh_token`` when an identity token is
  known (``grant_type=password`` with ``oauth2=True``, falling back to ``GET`` when the realm refuses POST);
* tokens are cached per (realm, service, scope) until they expire; a token for ``pull,push`` serves ``pull``;
* once the challenge of a host is known, later requests get their token *before* they are sent, so a
  streamed upload body is not sent twice;
* ``401 error="insufficient_scope"`` asks for a new token with the wider scope (never resends the old one);
* a ``401`` — or a ``403``, as ECR answers — on a cached token gets one fresh token and one retry;
* credentials from a provider (``specman.oci.providers``: AWS ECR) are short-lived: they are looked up again at
  their ``refresh_at``, and a ``401``/``403`` on them tells the provider (``on_refused``) and retries once with
  the new ones; they go as Basic with the first request (``preemptive_basic``), so a provider's failure is known
  before the registry is contacted.

The credentials come from a callable ``host -> Credentials | None`` so that flags, environment and docker
config are consulted lazily, only for hosts that ask.  Secrets never appear in exceptions or reprs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx

from specman.errors import AuthenticationError, ProtocolError, RegistryError
from specman.oci.credentials import Credentials

__all__ = ["Challenge", "RegistryAuth", "merge_scopes", "parse_challenge", "request_scopes"]

CredentialLookup = Callable[[str], Credentials | None]
_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_REPO_PATH_RE = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)(?:/|$)")
_MIN_TOKEN_LIFETIME = 60


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    realm: str = ""
    service: str = ""
    scope: str = ""
    error: str = ""


def parse_challenge(header: str) -> Challenge | None:
    """Parse a ``WWW-Authenticate`` header (``Basic realm=..`` or ``Bearer realm=..,service=..,scope=..``)."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)
    }
    params = {k: v.replace('\\"', '"') for k, v in params.items()}
    return Challenge(
        scheme,
        params.get("realm", ""),
        params.get("service", ""),
        params.get("scope", ""),
        params.get("error", ""),
    )


def _parse_scopes(text: str) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for item in text.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind and name:
            out.setdefault((kind, name), set()).update(a for a in actions.split(",") if a)
    return out


def merge_scopes(*scope_texts: str) -> str:
    """Union of space-separated scopes, normalised (sorted, actions joined by commas)."""
    merged: dict[tuple[str, str], set[str]] = {}
    for text in scope_texts:
        for key, actions in _parse_scopes(text).items():
            merged.setdefault(key, set()).update(actions)
    return " ".join(f"{k}:{n}:{','.join(sorted(a))}" for (k, n), a in sorted(merged.items()))


def _covers(have: str, need: str) -> bool:
    owned = _parse_scopes(have)
    return all(actions <= owned.get(key, set()) for key, actions in _parse_scopes(need).items())


def request_scopes(request: httpx.Request) -> str:
    """The scope a request needs: ``repository:NAME:pull`` to read, ``pull,push`` to write (plus the
    source repository of a cross-repository mount)."""
    match = _REPO_PATH_RE.match(request.url.path)
    if not match:
        return ""
    name = match.group("name")
    if request.method in ("GET", "HEAD"):
        return f"repository:{name}:pull"
    if request.method == "DELETE":
        return f"repository:{name}:delete"
    scopes = [f"repository:{name}:pull,push"]
    source = request.url.params.get("from")
    if source:
        scopes.append(f"repository:{source}:pull")
    return merge_scopes(*scopes)


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Registry auth for every host of a client; thread-safe token cache."""

    def __init__(
        self,
        credentials: CredentialLookup | Credentials | None = None,
        *,
        oauth2: bool = False,
        on_refused: Callable[[str, Credentials], None] | None = None,
        preemptive_basic: bool = False,
    ) -> None:
        if isinstance(credentials, Credentials) or credentials is None:
            fixed = credentials
            self._lookup: CredentialLookup = lambda _host: fixed
        else:
            self._lookup = credentials
        self.oauth2 = oauth2
        self._on_refused = on_refused
        self._preemptive = preemptive_basic  # a provider's registry (ECR) takes Basic: send it with the first request
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._challenges: dict[str, Challenge] = {}
        self._creds_cache: dict[str, Credentials | None] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.token_requests = 0

    # -- credentials -------------------------------------------------------------------------------------
    def credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host in self._creds_cache:
                cached = self._creds_cache[host]
                if cached is None or cached.refresh_at is None or time.time() < cached.refresh_at:
                    return cached
        creds = self._lookup(host)
        with self._lock:
            self._creds_cache[host] = creds
        return creds

    def forget_credentials(self, host: str) -> None:
        """Look ``host``'s credentials up again next time (they were refused: a rotated password may be there)."""
        with self._lock:
            self._creds_cache.pop(host, None)

    def _renew(self, host: str, used: Credentials | None) -> bool:
        """Credentials from a provider were refused: tell it, look them up again; True when they changed."""
        if self._on_refused is None or used is None:
            return False
        self._on_refused(host, used)
        self.forget_credentials(host)
        fresh = self.credentials(host)
        return fresh is not None and fresh != used

    # -- token cache ---------------------------------------------------------------------------------------
    def _cached(self, challenge: Challenge, scope: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            for (realm, service, have), token in list(self._tokens.items()):
                if token.expires_at <= now:
                    del self._tokens[(realm, service, have)]
                elif realm == challenge.realm and service == challenge.service and _covers(have, scope):
                    return token.value
        return None

    def _forget(self, challenge: Challenge, scope: str) -> None:
        with self._lock:
            for key in [k for k in self._tokens if k[0] == challenge.realm and k[1] == challenge.service]:
                if _covers(key[2], scope) or _covers(scope, key[2]):
                    del self._tokens[key]

    # -- the flow ------------------------------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        host = request.url.netloc.decode("ascii")
        scope = request_scopes(request)
        with self._lock:
            known = self._challenges.get(host)
        applied, used = yield from self._authorize(request, host, known, scope)
        response = yield request

        fresh = widened = renewed = False
        while response.status_code in (401, 403):
            basic = response.headers.get("WWW-Authenticate", "").lower().startswith("basic")
            if (
                applied == "basic"
                and (basic or response.status_code == 403)
                and not renewed
                and self._renew(host, used)
            ):
                renewed = True  # a provider's password expired or was revoked: once more with a new one
                used = self._set_basic(request, host)
                response = yield request
                continue
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is None and response.status_code == 403 and applied == "token" and not fresh:
                challenge = known  # ECR: an expired token gets 403 without a challenge
            if challenge is None or (response.status_code == 403 and applied != "token"):
                return
            if challenge.scheme == "basic":
                if applied == "basic":
                    return
                used = self._set_basic(request, host)
                if used is None:
                    return
                with self._lock:
                    self._challenges[host] = challenge
                applied = "basic"
                response = yield request
                continue
            if fresh:
                if challenge.error != "insufficient_scope" or widened:
                    return
                widened = True
            if not challenge.realm.startswith(("http://", "https://")):
                raise ProtocolError(f"{host}: token realm {challenge.realm!r} is not an http(s) URL")
            wanted = merge_scopes(challenge.scope, scope)
            with self._lock:
                self._challenges[host] = Challenge("bearer", challenge.realm, challenge.service)
            self._forget(challenge, wanted)
            token = yield from self._fetch_token(host, challenge, wanted)
            fresh = True
            applied = "token"
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request

    def _authorize(
        self, request: httpx.Request, host: str, known: Challenge | None, scope: str
    ) -> Generator[httpx.Request, httpx.Response, tuple[str, Credentials | None]]:
        """Before the first send, apply what is known of ``host``: Basic (also pre-emptively), or a cached or
        fetched token for ``scope``.  (what was applied: "basic", "token" or "", the credentials of Basic)."""
        if (known is None and self._preemptive) or (known is not None and known.scheme == "basic"):
            used = self._set_basic(request, host)
            return ("basic" if used else ""), used
        if known is not None and scope:
            token = self._cached(known, scope)
            if token is None:
                token = yield from self._fetch_token(host, known, merge_scopes(known.scope, scope))
            request.headers["Authorization"] = f"Bearer {token}"
            return "token", None
        return "", None

    def _set_basic(self, request: httpx.Request, host: str) -> Credentials | None:
        """Basic credentials on ``request``; the credentials used (None: there are none for ``host``)."""
        creds = self.credentials(host)
        if creds is None or not creds.username:
            return None
        raw = f"{creds.username}:{creds.password}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return creds

    def _token_request(self, host: str, challenge: Challenge, scope: str, *, post: bool) -> httpx.Request:
        creds = self.credentials(host)
        scopes = scope.split()
        if post and creds is not None:
            form = {"service": challenge.service, "client_id": "specman", "scope": " ".join(scopes)}
            if creds.identity_token:
                form.update(grant_type="refresh_token", refresh_token=creds.identity_token)
            else:
                form.update(
                    grant_type="password",
                    username=creds.username,
                    password=creds.password,
                    access_type="offline",
                )
            return httpx.Request("POST", challenge.realm, data=form)
        params: list[tuple[str, str]] = [("service", challenge.service)] if challenge.service else []
        params += [("scope", s) for s in scopes]
        headers = {}
        if creds is not None and creds.username:
            params.append(("account", creds.username))
            raw = f"{creds.username}:{creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return httpx.Request("GET", httpx.URL(challenge.realm, params=params), headers=headers)

    def _fetch_token(
        self, host: str, challenge: Challenge, scope: str
    ) -> Generator[httpx.Request, httpx.Response, str]:
        creds = self.credentials(host)
        post = creds is not None and (bool(creds.identity_token) or (self.oauth2 and bool(creds.username)))
        response = yield self._token_request(host, challenge, scope, post=post)
        response.read()
        if post and response.status_code in (404, 405) and not (creds and creds.identity_token):
            response = yield self._token_request(host, challenge, scope, post=False)
            response.read()
        if response.status_code in (401, 403) and self._renew(host, creds):  # a provider's password expired
            creds = self.credentials(host)
            response = yield self._token_request(host, challenge, scope, post=post)
            response.read()
        with self._lock:
            self.token_requests += 1
        realm_host = httpx.URL(challenge.realm).host
        if response.status_code in (401, 403):
            self.forget_credentials(host)
            raise AuthenticationError(
                f"{host}: unauthorized: the token service at {realm_host} rejected the "
                f"{'credentials' if creds and not creds.empty else 'anonymous request'} (HTTP {response.status_code})",
                status=401,
                code="UNAUTHORIZED",
            )
        if response.status_code >= 400:
            raise RegistryError(
                f"{host}: token service at {realm_host} answered HTTP {response.status_code}",
                status=response.status_code,
            )
        try:
            obj = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProtocolError(f"{host}: token service at {realm_host} did not return JSON") from None
        token = obj.get("token") or obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{host}: token service at {realm_host} returned no token")
        expires_in = obj.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else _MIN_TOKEN_LIFETIME
        margin = min(10.0, lifetime / 4)
        refresh = obj.get("refresh_token")
        with self._lock:
            self._tokens[(challenge.realm, challenge.service, scope)] = _Token(
                token, time.monotonic() + lifetime - margin
            )
            if isinstance(refresh, str) and refresh:
                self.refresh_tokens[host] = refresh
        return token
