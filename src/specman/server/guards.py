"""What stands in front of the app: the allowed methods and ``Host``, HTTP Basic auth, and the response counter.

Each is a plain ASGI middleware (no Starlette ``BaseHTTPMiddleware``: it would buffer and slow every response).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Container
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BasicAuth", "CountResponses", "Methods", "read_basic_auth"]

_READ_METHODS: Final = ("GET", "HEAD")


def read_basic_auth(path: Path) -> tuple[str, str]:
    """``user:password`` from the first line of ``path`` (a mounted Secret); ValueError when malformed."""
    line = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    user, sep, password = line.strip("\r\n").partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{path}: expected one line 'user:password'")
    return user, password


def _host_error(scope: Scope) -> str | None:
    """RFC 9112 §3.2: an HTTP/1.1 request without ``Host``, or any request with more than one, is a 400.

    granian hands a request without ``Host`` on with an empty one, so an empty ``Host`` counts as none for
    HTTP/1.1 (nginx answers both 400 too); HTTP/1.0 needs none."""
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    if len(hosts) > 1:
        return "more than one Host header"
    if scope.get("http_version") == "1.1" and not (hosts and hosts[0].strip()):
        return "an HTTP/1.1 request needs a Host header"
    return None


class Methods:
    """Only GET and HEAD, except POST on the paths in ``post_paths``: anything else is 405 with ``Allow``.  A
    request without its ``Host`` (``_host_error``) is answered 400 first."""

    def __init__(self, app: ASGIApp, post_paths: Container[str] = ()) -> None:
        self.app = app
        self.post_paths = post_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _host_error(scope)
            if problem is not None:
                await PlainTextResponse(f"Bad request: {problem}\n", status_code=400)(scope, receive, send)
                return
            post = scope.get("path") in self.post_paths
            allowed = ("POST",) if post else _READ_METHODS
            if scope["method"] not in allowed:
                response = PlainTextResponse(
                    "Method not allowed\n", status_code=405, headers={"Allow": ", ".join(allowed)}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _never(scope: Scope) -> bool:
    return False


class BasicAuth:
    """HTTP Basic auth in front of every request but those ``is_open`` says are open (the probes and the
    notifications: what the request reaches, not only its path, decides); credentials compared in constant time."""

    def __init__(
        self, app: ASGIApp, credentials: tuple[str, str], is_open: Callable[[Scope], Awaitable[bool]] = _never
    ) -> None:
        self.app = app
        self.user = credentials[0].encode()
        self.password = credentials[1].encode()
        self.is_open = is_open

    def _allowed(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        ok_user = hmac.compare_digest(user, self.user)
        ok_password = hmac.compare_digest(password, self.password)
        return bool(sep) and ok_user and ok_password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or await self.is_open(scope):
            await self.app(scope, receive, send)
            return
        if self._allowed(Request(scope).headers.get("authorization")):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "Unauthorized\n", status_code=401, headers={"WWW-Authenticate": 'Basic realm="specman", charset="UTF-8"'}
        )
        await response(scope, receive, send)


class CountResponses:
    """Calls ``record(method, status)`` once per HTTP response (the status of ``http.response.start``)."""

    def __init__(self, app: ASGIApp, record: Callable[[str, int], None]) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.record(scope["method"], message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)
