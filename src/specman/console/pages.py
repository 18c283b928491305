"""The console's web pages: login, Pack Registries, SCAR and Jobs, rendered on the server from ``Console``.

A page shows what the system API answers — the same ``Console`` methods produce the page's data and the
``/v1/...`` JSON — and every change a page makes goes through the API: ``static/console.js`` (``specman.webui``)
calls ``/v1/auth/syslogin?setCookie=true``, ``/v1/registries/oci...``, ``/v1/system/config/scar`` and
``/v1/jobs/internal/.../run`` with the session cookie, then reloads the page.  There is no form post and no second
implementation of any operation here.

A page without a valid session redirects to ``/login`` (303), which says when a session cookie was present but no
longer valid ("expired").  ``next`` is only ever one of the pages below, so the login cannot redirect elsewhere.
Every value is escaped by the templates; query parameters only select fixed messages, never echoed text.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from specman.console.auth import token_from_request
from specman.console.errors import ApiError
from specman.console.jobs import JOBS
from specman.console.service import Console
from specman.webui import STATIC_DIR, render

__all__ = ["PAGES", "Pages"]

PAGES: Final = ("/registries", "/scar", "/jobs")
STATIC: Final = "/static"
RUNS_SHOWN: Final = 8
_LOGIN_MESSAGES: Final = {
    "expired": "Your session has expired. Please log in again.",
    "loggedOut": "You have been logged out.",
}
_FLASH: Final = {"saved": "Saved."}
CHECK_LABELS: Final = {
    "endpoint": "Endpoint",
    "reachable": "Reachable",
    "tls": "TLS",
    "credentials": "Credentials",
    "repository": "Repository",
    "signatures": "Signatures",
}
_JOB_TEXT: Final = {
    "instanceTypes": "Cloud instance types from the SCAR endpoint (cloud-types/<cloud>/instance-types.json)",
    "storageTypes": "Cloud storage types from the SCAR endpoint (cloud-types/<cloud>/storage-types.json)",
}

P = ParamSpec("P")
T = TypeVar("T")
Page = Callable[[Request, str], Awaitable[Response]]


async def _thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _html(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, static=STATIC, **context), headers={"Cache-Control": "no-store"})


def _seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _with_duration(run: dict[str, Any]) -> dict[str, Any]:
    """A run (``Console.job``'s JSON) with ``duration``: until its end, or until now while it runs."""
    started, ended = _seconds(run.get("startedAt")), _seconds(run.get("endedAt"))
    if started is None:
        return {**run, "duration": None}
    end = ended if ended is not None else datetime.now(UTC).timestamp()
    return {**run, "duration": max(end - started, 0.0)}


class Pages:
    """The page endpoints over ``console`` (see ``routes``)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _session(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        """``page(request, user)`` with a valid session; a redirect to the login page otherwise."""

        async def handle(request: Request) -> Response:
            tokens = token_from_request(request.headers.get("cookie"), request.headers.get("authorization"))
            user = await _thread(self.console.auth.user_for, tokens) if tokens else None
            if user is None:
                query = {"next": request.url.path, **({"expired": "1"} if tokens else {})}
                return RedirectResponse(f"/login?{urlencode(query)}", status_code=303)
            return await page(request, user)

        return handle

    @staticmethod
    def _flash(request: Request) -> str | None:
        return next((text for key, text in _FLASH.items() if key in request.query_params), None)

    # -- pages ----------------------------------------------------------------------------------------------
    async def root(self, request: Request) -> Response:
        return RedirectResponse(PAGES[0], status_code=303)

    async def login(self, request: Request) -> Response:
        target = request.query_params.get("next", "")
        message = next((text for key, text in _LOGIN_MESSAGES.items() if key in request.query_params), None)
        return _html("login.html", next=target if target in PAGES else PAGES[0], message=message)

    async def registries(self, request: Request, user: str) -> Response:
        data = await _thread(self.console.list_registries)
        return _html(
            "registries.html",
            user=user,
            active="/registries",
            flash=self._flash(request),
            registries=data["items"],
            check_labels=CHECK_LABELS,
        )

    async def scar(self, request: Request, user: str) -> Response:
        try:
            scar: dict[str, Any] | None = await _thread(self.console.get_scar)
        except ApiError as exc:
            if exc.status != 404:
                raise
            scar = None
        return _html("scar.html", user=user, active="/scar", flash=self._flash(request), scar=scar)

    async def jobs(self, request: Request, user: str) -> Response:
        jobs = []
        for name in JOBS:
            job = await _thread(self.console.job, name)
            runs = [_with_duration(run) for run in job["runs"][:RUNS_SHOWN]]
            jobs.append({**job, "runs": runs, "description": _JOB_TEXT.get(job["kind"], job["kind"])})
        return _html("jobs.html", user=user, active="/jobs", flash=self._flash(request), jobs=jobs)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.root, methods=["GET"]),
            Route("/login", self.login, methods=["GET"]),
            Route("/registries", self._session(self.registries), methods=["GET"]),
            Route("/scar", self._session(self.scar), methods=["GET"]),
            Route("/jobs", self._session(self.jobs), methods=["GET"]),
            Mount(STATIC, StaticFiles(directory=STATIC_DIR), name="static"),
        ]
