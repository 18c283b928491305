"""``OriginCheck``: the console refuses state changes a browser sends on behalf of another site (403).

The session cookie is ``SameSite=Strict`` already; on top of it every state-changing request — any method but
``GET``/``HEAD``/``OPTIONS``, plus the ``GET`` on the job ``run`` endpoints, which start a run — is refused when

* its ``Origin`` header names another host than the request's ``Host`` (or is ``null``), or
* it has no ``Origin`` but ``Sec-Fetch-Site`` says ``cross-site`` or ``same-site`` (a browser navigation or form
  from elsewhere).

Browsers always send one of the two with such requests, so a page of another origin cannot change anything, even
when it has the session cookie or a token.  Clients that send neither header — curl, the documentation's
``scar-registry-update.sh``, specman's own tools — are not browsers and are not affected.  The scheme is not
compared: behind a TLS-terminating proxy the console sees ``http`` for the browser's ``https`` origin.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["OriginCheck", "cross_origin_problem"]

_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_JOBS_PREFIX: Final = "/v1/jobs/internal/"


def _changes_state(method: str, path: str) -> bool:
    return method not in _SAFE_METHODS or (path.startswith(_JOBS_PREFIX) and path.rstrip("/").endswith("/run"))


def cross_origin_problem(headers: Headers) -> str | None:
    """Why a state-changing request with these headers comes from another origin, or None when it does not."""
    origin = headers.get("origin")
    if origin is not None:
        host = headers.get("host", "").strip().lower()
        try:
            netloc = urlsplit(origin.strip()).netloc.lower()
        except ValueError:
            netloc = ""
        if origin.strip() == "null" or not netloc or netloc != host:
            return "the request comes from another origin (its Origin header is not this console)"
        return None
    if headers.get("sec-fetch-site", "").strip().lower() in ("cross-site", "same-site"):
        return "the request comes from another site (Sec-Fetch-Site)"
    return None


class OriginCheck:
    """ASGI middleware answering 403 ``{"code": "CrossOriginRequest"}`` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _changes_state(scope["method"], scope["path"]):
            problem = cross_origin_problem(Headers(scope=scope))
            if problem is not None:
                response = JSONResponse(
                    {"code": "CrossOriginRequest", "message": problem},
                    status_code=403,
                    headers={"Cache-Control": "no-store"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
