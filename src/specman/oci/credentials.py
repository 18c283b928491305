"""Registry credentials: docker ``config.json`` (``auths``, ``credHelpers``, ``credsStore``) and helpers.

Lookup order for a host, as docker does: ``credHelpers[host]`` → ``credsStore`` → ``auths[host]``.  An
``auths`` entry is ``{"auth": base64("user:pass")}`` (or ``username``/``password``), optionally with an
``identitytoken`` (a refresh token for OAuth2).  A helper is the program ``docker-credential-<name>`` speaking
the docker credential-helper protocol on stdin/stdout; a ``Username`` of ``<token>`` means the secret is an
identity token.  The config lives in ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``; specman
writes it atomically with mode 0600 and never prints a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specman.errors import CredentialsError, CredentialsNotFoundError
from specman.files import atomic_write

__all__ = ["Credentials", "DockerConfig", "config_path"]

_TOKEN_USER = "<token>"  # noqa: S105 - docker's marker for identity tokens, not a secret
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """Username/password, or an identity (refresh) token. ``repr`` never shows the secret."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _normalise_host(key: str) -> str:
    """``https://host:5000/v1/`` → ``host:5000``; Docker Hub's many spellings → ``docker.io``."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if key in _HUB_KEYS or host in _HUB_KEYS else host


class DockerConfig:
    """Read and write a docker ``config.json``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialsError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise CredentialsError(f"{self.path} is not valid JSON (line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise CredentialsError(f"{self.path} is not a JSON object")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, (json.dumps(data, indent="\t") + "\n").encode(), mode=0o600)

    def get(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (``host[:port]``), or None when the config has none."""
        data = self._load()
        wanted = _normalise_host(host)
        helpers = data.get("credHelpers") or {}
        for key, helper in helpers.items() if isinstance(helpers, dict) else ():
            if _normalise_host(key) == wanted and isinstance(helper, str):
                return _helper_get(helper, key)
        store = data.get("credsStore")
        if isinstance(store, str) and store:
            creds = _helper_get(store, host, missing_ok=True)
            if creds is not None:
                return creds
        auths = data.get("auths") or {}
        for key, entry in auths.items() if isinstance(auths, dict) else ():
            if _normalise_host(key) == wanted and isinstance(entry, dict):
                return _decode_entry(entry, key, self.path)
        return None

    def store(self, host: str, creds: Credentials) -> str:
        """Save ``creds`` for ``host``; returns where they went (the helper name or the file path)."""
        data = self._load()
        store = data.get("credsStore")
        helpers = data.get("credHelpers") or {}
        helper = helpers.get(host) if isinstance(helpers, dict) else None
        helper = helper or (store if isinstance(store, str) and store else None)
        if helper:
            user, secret = (
                (_TOKEN_USER, creds.identity_token) if creds.identity_token else (creds.username, creds.password)
            )
            payload = json.dumps({"ServerURL": host, "Username": user, "Secret": secret})
            _run_helper(helper, "store", payload)
            auths = data.setdefault("auths", {})
            auths.setdefault(host, {})
            self._save(data)
            return f"credential helper docker-credential-{helper}"
        entry: dict[str, str] = {}
        if creds.identity_token:
            entry["auth"] = base64.b64encode(f"{creds.username}:".encode()).decode()
            entry["identitytoken"] = creds.identity_token
        else:
            entry["auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        data.setdefault("auths", {})[host] = entry
        self._save(data)
        return str(self.path)

    def erase(self, host: str) -> bool:
        """Remove the credentials of ``host``; True when something was removed."""
        data = self._load()
        removed = False
        auths = data.get("auths") or {}
        for key in [k for k in auths if _normalise_host(k) == _normalise_host(host)]:
            del auths[key]
            removed = True
        store = data.get("credsStore")
        helpers = data.get("credHelpers") or {}
        helper = helpers.get(host) if isinstance(helpers, dict) else None
        helper = helper or (store if isinstance(store, str) and store else None)
        if helper:
            try:
                _run_helper(helper, "erase", host)
                removed = True
            except CredentialsError:
                pass
        if removed:
            self._save(data)
        return removed


def _decode_entry(entry: dict[str, Any], key: str, path: Path) -> Credentials:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{path}: auths[{key!r}].auth is not valid base64") from None
        if ":" not in decoded:
            raise CredentialsError(f"{path}: auths[{key!r}].auth must encode 'username:password'")
        username, password = decoded.split(":", 1)
    token = str(entry.get("identitytoken") or "")
    return Credentials(username, "" if token else password, token)


# the credential helper protocol's answer for "nothing stored for this server" (errCredentialsNotFound)
_NOT_FOUND = "credentials not found in native keychain"


def _run_helper(name: str, action: str, stdin: str) -> str:
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run([program, action], input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise CredentialsError(f"credential helper {program} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} {action} timed out") from None
    if proc.returncode != 0:
        reason = (proc.stdout or proc.stderr).strip().splitlines()
        if reason and reason[0].strip().lower() == _NOT_FOUND:
            raise CredentialsNotFoundError(f"credential helper {program} has no credentials for this host")
        raise CredentialsError(
            f"credential helper {program} {action} failed: {reason[0] if reason else proc.returncode}"
        )
    return proc.stdout


def _helper_get(name: str, host: str, *, missing_ok: bool = False) -> Credentials | None:
    try:
        out = _run_helper(name, "get", host)
    except CredentialsError as exc:
        if missing_ok and isinstance(exc, CredentialsNotFoundError):
            return None
        raise
    try:
        obj = json.loads(out)
        user, secret = str(obj.get("Username") or ""), str(obj.get("Secret") or "")
    except (json.JSONDecodeError, AttributeError):
        raise CredentialsError(f"credential helper docker-credential-{name} returned invalid JSON") from None
    if user == _TOKEN_USER:
        return Credentials(identity_token=secret)
    return Credentials(user, secret)
