"""A client of the console's system API, for specman's own tools (``serve --console``, ``migrate``).

It builds its ``httpx.Client`` with ``specman.oci.http`` (one TLS setup, one transport-error mapping) and turns
every refusal into a one-line ``ConsoleError``.  Tokens are read from their file at each request, so a rotated
Secret applies without a restart; they are sent as ``Authorization: Bearer`` and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from specman.errors import ConsoleError, UsageError
from specman.oci.http import TLSOptions, make_client, map_transport_errors
from specman.signature.policy import PolicySpec

__all__ = ["ConsoleClient", "SpectroSource"]

SOURCE_PATH = "/v1/system/specman/source"
LOGIN_PATH = "/v1/auth/syslogin"


@dataclass(frozen=True)
class SpectroSource:
    """The registry the console marks "Contains Spectro Manifests", with what it takes to read from it."""

    registry: str  # host[:port]
    repository: str
    plain_http: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    ca_cert: str | None = None
    insecure: bool = False
    verify: PolicySpec = field(default_factory=PolicySpec)  # the signature policy the registry carries
    auth_type: str = "basic"  # "ecr": the password comes from AWS, with the keys / role below
    aws_access_key_id: str = ""
    aws_secret_access_key: str = field(default="", repr=False)
    aws_role_arn: str = ""
    aws_external_id: str = ""

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}"


def _text(obj: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ConsoleError(f"console: {SOURCE_PATH}: '{key}' is missing or not a string")
    return value


class ConsoleClient:
    """``base_url`` of the console.  Requests carry the service token read from ``token_file`` (first line), or the
    session token of ``login`` (the system administrator, as the documentation's script logs in)."""

    def __init__(
        self,
        base_url: str,
        *,
        token_file: Path | None = None,
        tls: TLSOptions | None = None,
        timeout: float = 10.0,
    ):
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
            raise UsageError(f"console URL {base_url!r}: expected https://HOST[:PORT]")
        self.base_url = str(url).rstrip("/")
        self.host = url.netloc.decode("ascii")
        self.token_file = token_file
        self._session: str | None = None
        self.http = make_client(tls or TLSOptions(), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _token(self) -> str:
        if self._session is not None:
            return self._session
        if self.token_file is None:
            raise ConsoleError(f"console {self.host}: not logged in")
        try:
            lines = self.token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConsoleError(f"cannot read the console token file {self.token_file}: {exc}") from None
        if not lines or not lines[0].strip():
            raise ConsoleError(f"the console token file {self.token_file} is empty")
        return lines[0].strip()

    def request(self, method: str, path: str, *, body: Any = None, auth: bool = True) -> Any:
        """``method path`` (with the token unless ``auth`` is false); the JSON answer (``None`` for an empty
        one), or ``ConsoleError`` in one line naming the console's own message."""
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        with map_transport_errors(self.host):
            response = self.http.request(method, self.base_url + path, headers=headers, json=body)
        if response.status_code >= 400:
            try:
                detail = response.json().get("message") or response.reason_phrase
            except (ValueError, AttributeError):
                detail = response.reason_phrase
            raise ConsoleError(
                f"console {self.host}: {method} {path.split('?')[0]}: HTTP {response.status_code}: {detail}",
                status=response.status_code,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConsoleError(f"console {self.host}: {path}: the answer is not JSON") from None

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path`` with the token; the JSON object it answers, or ``ConsoleError`` in one line."""
        body = self.request("GET", path)
        if not isinstance(body, dict):
            raise ConsoleError(f"console {self.host}: {path}: the answer is not a JSON object")
        return body

    def login(self, username: str, password: str) -> None:
        """``POST /v1/auth/syslogin``: later requests carry the session token (never shown, never logged)."""
        body = self.request("POST", LOGIN_PATH, body={"username": username, "password": password}, auth=False)
        token = body.get("Authorization") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConsoleError(f"console {self.host}: {LOGIN_PATH}: no Authorization token in the answer")
        self._session = token

    def spectro_source(self) -> SpectroSource:
        """The "Contains Spectro Manifests" registry (404 from the console: none is marked)."""
        body = self.get_json(SOURCE_PATH)
        ca = body.get("caCert")
        return SpectroSource(
            registry=_text(body, "registry"),
            repository=_text(body, "repository"),
            plain_http=body.get("plainHttp") is True,
            username=_text(body, "username", required=False),
            password=_text(body, "password", required=False),
            ca_cert=ca if isinstance(ca, str) and ca.strip() else None,
            insecure=body.get("insecureSkipVerify") is True,
            verify=_policy(body),
            auth_type="ecr" if body.get("authType") == "ecr" else "basic",
            aws_access_key_id=_text(body, "awsAccessKeyId", required=False),
            aws_secret_access_key=_text(body, "awsSecretAccessKey", required=False),
            aws_role_arn=_text(body, "awsRoleArn", required=False),
            aws_external_id=_text(body, "awsExternalId", required=False),
        )


def _policy(body: dict[str, Any]) -> PolicySpec:
    """The registry's signature policy; ConsoleError when it is unusable (a sync must not run without it)."""
    try:
        return PolicySpec.from_json({k: body[k] for k in ("verify", "verifyKeys", "verifyTags") if k in body})
    except UsageError as exc:
        raise ConsoleError(f"console: {SOURCE_PATH}: signature policy: {exc}") from None
