"""Who may call the console: the admin's password, session tokens, login throttling and the service token.

* Passwords are argon2id hashes (argon2-cffi defaults, salted); an unknown user costs the same verification time.
* The admin exists from the first start: ``ensure_admin`` sets the password from ``--admin-password-file`` /
  ``SPECMAN_ADMIN_PASSWORD`` (and resets it when that value changes), or generates one into
  ``<data-dir>/admin-password`` (0600) once.  It returns where the password came from, never the password.
* Session tokens are ``secrets.token_urlsafe(32)``, stored as their sha256 only, with an expiry, revoked by logout.
  A request carries one in ``Cookie: Authorization=<token>`` (also quoted, ``Authorization="<token>"``, as
  ``jq`` without ``-r`` prints it) or in the ``Authorization`` header (``Bearer <token>`` or the raw token); when
  it carries several, the first valid one counts.
* Failed logins are counted per username + client address; from the 5th on, that pair is locked out for
  30 s * 2^(failures - 5), at most an hour (429 with ``Retry-After``); a good login clears the count.
* The service token (``--service-token-file``) is for specman itself; it opens only the endpoints meant for it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from http.cookies import _unquote
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from specman.console.errors import ApiError
from specman.console.storage import Storage
from specman.files import atomic_write

__all__ = [
    "ADMIN",
    "ADMIN_PASSWORD_FILE",
    "Authenticator",
    "LoginResult",
    "ensure_admin",
    "hash_token",
    "read_secret_file",
    "token_from_request",
]

ADMIN: Final = "admin"
ADMIN_PASSWORD_FILE: Final = "admin-password"  # noqa: S105 - a file name
LOCK_THRESHOLD: Final = 5
LOCK_BASE_S: Final = 30.0
LOCK_CAP_S: Final = 3600.0
_HASHER: Final = PasswordHasher()
_DUMMY_HASH: Final = _HASHER.hash("specman: no such user")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def ensure_admin(storage: Storage, data_dir: Path, password: str | None) -> str:
    """Make sure the admin user exists; returns a description of where its password is (for the log)."""
    current = storage.password_hash(ADMIN)
    if password is not None:
        if current is None or not _verify(current, password):
            storage.set_password_hash(ADMIN, _HASHER.hash(password))
        return "the admin password given to the console"
    if current is None:
        path = data_dir / ADMIN_PASSWORD_FILE
        generated = secrets.token_urlsafe(18)
        atomic_write(path, generated.encode() + b"\n", mode=0o600)
        storage.set_password_hash(ADMIN, _HASHER.hash(generated))
        return f"generated, in {path}"
    path = data_dir / ADMIN_PASSWORD_FILE
    return f"unchanged{f' (generated at first start, in {path})' if path.exists() else ''}"


def token_from_request(cookie_header: str | None, authorization: str | None) -> list[str]:
    """The session tokens a request carries: the ``Authorization`` cookie(s), then the ``Authorization`` header."""
    found: list[str] = []
    for part in (cookie_header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip() == "Authorization":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = _unquote(value)
            if value:
                found.append(str(value))
    if authorization:
        value = authorization.strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if value:
            found.append(value)
    return found[:4]


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: float


class Authenticator:
    """Logins, sessions and the service token over a ``Storage``."""

    def __init__(self, storage: Storage, *, token_ttl: float, service_token: str | None = None) -> None:
        self.storage = storage
        self.token_ttl = token_ttl
        self._service_hash = hash_token(service_token) if service_token else None

    def login(self, username: str, password: str, client: str) -> LoginResult:
        key = f"{username}\x00{client}"
        now = time.time()
        locked = self.storage.locked_until(key)
        if locked > now:
            raise _locked(locked - now)
        if not _verify(self.storage.password_hash(username), password):
            locked = self.storage.record_login_failure(key, now, LOCK_THRESHOLD, LOCK_BASE_S, LOCK_CAP_S)
            if locked > now:
                raise _locked(locked - now)
            raise ApiError(401, "Unauthorized", "invalid username or password")
        self.storage.clear_login_failures(key)
        token = secrets.token_urlsafe(32)
        expires = now + self.token_ttl
        self.storage.add_token(hash_token(token), username, now, expires)
        if secrets.randbelow(50) == 0:
            self.storage.purge_tokens(now)
        return LoginResult(token, expires)

    def user_for(self, tokens: list[str]) -> str | None:
        """The user of the first valid token among ``tokens`` (a stale cookie does not hide a good header)."""
        now = time.time()
        for token in tokens:
            user = self.storage.token_user(hash_token(token), now) if len(token) <= 512 else None
            if user is not None:
                return user
        return None

    def logout(self, token: str) -> None:
        self.storage.revoke_token(hash_token(token))

    def is_service_token(self, token: str | None) -> bool:
        if not token or self._service_hash is None or len(token) > 512:
            return False
        return hmac.compare_digest(hash_token(token), self._service_hash)


def _locked(seconds: float) -> ApiError:
    wait = max(1, math.ceil(seconds))
    return ApiError(
        429,
        "TooManyRequests",
        f"too many failed logins: try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def read_secret_file(path: Path) -> str:
    """The first line of a secret file (a mounted Secret), without its line break."""
    text = path.read_text(encoding="utf-8")
    return text.splitlines()[0] if text else ""
