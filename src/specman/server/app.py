"""The ASGI application of ``specman serve``: the published view, per-version trees, status and probes.

``create_app(data_dir)`` reads only what ``specman.store`` published, through its ``StoreReader``: every request
checks ``<data_dir>/current`` with one ``readlink`` and the generation record is reloaded when the link moved, so a
sync in another process is visible at once and a request never mixes two generations (it resolves its tree once).
It imports nothing of the process runtime: ``specman serve``'s workers hand it a ``Service`` (sync state, metrics,
notifications) built by ``specman.runtime.workers``.

Paths go through ``paths.parse_request_path`` (on the raw, still encoded path) and ``paths.confine``;
preconditions and ranges through ``conditional``; bodies, ETags and listings through ``files``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from specman.server.conditional import RangeNotSatisfiable, not_modified, parse_range, range_applies
from specman.server.files import FileIndex, html_listing, listing, send_file, send_whole_file
from specman.server.guards import BasicAuth, CountResponses, Methods
from specman.server.notify import Notifier
from specman.server.paths import PathRejected, RequestPath, parse_request_path
from specman.server.status_page import status_context
from specman.store import StoreReader
from specman.webui import HEADERS, STATIC_DIR, render

__all__ = ["VERSIONS_PREFIX", "Exporter", "Service", "create_app"]

VERSIONS_PREFIX: Final = "/_specman/versions/"
NOTIFY_PATH: Final = "/_specman/notify"
STATUS_PATH: Final = "/_specman/status"
PAGE_PATH: Final = "/_specman/"
STATIC_PREFIX: Final = "/_specman/static/"
_OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics", NOTIFY_PATH})  # no Basic auth
_API_PATHS: Final = _OPEN_PATHS | {STATUS_PATH, PAGE_PATH, "/_specman"}  # and STATIC_PREFIX; the rest are files


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers={"Cache-Control": "no-store"})


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return quote(str(scope.get("path", "/")))


_CONDITIONS: Final = frozenset({b"if-none-match", b"if-modified-since", b"if-range", b"range"})
_PARSED_PATHS: Final = 8192


def _conditions(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's precondition and range headers (one pass over the raw headers; usually none)."""
    found: dict[str, str] = {}
    for name, value in raw_headers:
        if name in _CONDITIONS:
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


class _Files:
    """GET/HEAD of files and directories under the current generation's tree or one version's tree."""

    def __init__(self, current: StoreReader) -> None:
        self.current = current
        self.index = FileIndex()
        self._paths: dict[str, RequestPath] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(scope, send)
        except PathRejected as exc:
            response = _error(exc.status, f"Bad request: {exc}")
        if response is not None:
            await response(scope, receive, send)

    def _root(self, raw: str) -> tuple[Path | None, str, str]:
        """The tree to serve ``raw`` from, the path inside it, and the URL prefix of that tree."""
        generation = self.current.current()
        if raw.startswith(VERSIONS_PREFIX):
            tag, _, rest = raw[len(VERSIONS_PREFIX) :].partition("/")
            tag_path = parse_request_path("/" + tag)
            if len(tag_path.names) != 1:
                raise PathRejected("a tag is required after /_specman/versions/")
            state = generation.tags.get(tag_path.names[0]) if generation is not None else None
            tree = self.current.version_tree(state) if state is not None else None
            return tree, "/" + rest, VERSIONS_PREFIX + tag
        return (generation.tree if generation is not None else None), raw, ""

    def _parse(self, inner: str) -> RequestPath:
        """``parse_request_path``, remembered for the paths clients ask for again and again (bounded)."""
        path = self._paths.get(inner)
        if path is None:
            path = parse_request_path(inner)
            if len(self._paths) >= _PARSED_PATHS:
                self._paths.clear()
            self._paths[inner] = path
        return path

    async def _respond(self, scope: Scope, send: Send) -> Response | None:
        root, inner, prefix = self._root(_raw_path(scope))
        path = self._parse(inner)
        entry = await self.index.lookup(root, path) if root is not None else None
        if root is None or entry is None:
            return _error(404, "Not found")
        if entry.is_dir:
            return await self._directory(Request(scope), root, entry.target, path, prefix)
        if path.directory:
            return _error(404, "Not found")
        conditions = _conditions(scope["headers"])
        if not conditions:  # the common case: the whole file, headers prepared once per file
            await send_whole_file(scope, send, entry)
            return None
        headers = {
            "ETag": entry.etag,
            "Last-Modified": entry.last_modified,
            "Accept-Ranges": "bytes",
            "Cache-Control": "no-cache",
        }
        get = conditions.get
        if not_modified(
            entry.etag, entry.mtime, if_none_match=get("if-none-match"), if_modified_since=get("if-modified-since")
        ):
            return Response(status_code=304, headers=headers)
        headers["Content-Type"] = entry.content_type
        ranges = None
        if range_applies(entry.etag, entry.mtime, get("if-range")):
            try:
                ranges = parse_range(get("range"), entry.size)
            except RangeNotSatisfiable as exc:
                return Response(
                    b"Range not satisfiable\n",
                    status_code=416,
                    headers={"Content-Range": str(exc), "Content-Type": "text/plain; charset=utf-8"},
                )
        await send_file(scope, send, entry.target, headers, entry.size, ranges)
        return None

    async def _directory(self, request: Request, root: Path, target: Path, path: RequestPath, prefix: str) -> Response:
        url_path = prefix + "/" + "".join(quote(name) + "/" for name in path.names)
        if not path.directory:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(url_path + query, status_code=301)
        entries = await anyio.to_thread.run_sync(listing, root, target)
        if _wants_json(request):
            return JSONResponse(entries, headers={"Cache-Control": "no-cache"})
        shown = prefix + "/" + "".join(name + "/" for name in path.names)
        return Response(
            html_listing(shown, entries),
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )


class Exporter(Protocol):
    """The metrics of the serving process (``specman.runtime.metrics.Metrics``)."""

    @property
    def content_type(self) -> str: ...

    def record_request(self, method: str, status: int) -> None: ...

    def render(self) -> bytes: ...


@dataclass(frozen=True)
class Service:
    """What ``specman serve`` adds to a bare file server: the sync loop's state, metrics and notifications.

    ``sync_state()`` returns the loop's ``SyncStatus`` as JSON (or None), ``notify(events)`` forwards accepted
    registry notifications to the loop; ``repository`` is the name notifications must carry (None: any).
    """

    source: str | None = None
    sync_state: Callable[[], dict[str, Any] | None] = lambda: None
    metrics: Exporter | None = None
    notify: Callable[[list[tuple[str, str]]], bool] | None = None
    repository: str | None = None
    notify_token_file: str | None = None
    notify_token_env: str | None = None


def _not_ready(sync: dict[str, Any] | None) -> str:
    """Why ``/readyz`` says no: nothing published yet, and what the sync loop is doing about it."""
    reason = "not ready: no generation published yet"
    if sync and sync.get("last_error"):
        return f"{reason}; last sync failed ({sync.get('last_error_reason')}): {sync['last_error']}"
    if sync and sync.get("state") == "ok":
        return f"{reason}; the last sync found no tag to publish"
    return f"{reason}; the first sync is running"


def _api(reader: StoreReader, service: Service) -> Starlette:
    """The small Starlette app behind the hot path: probes, status (JSON and page), metrics, notifications."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        generation = await anyio.to_thread.run_sync(reader.current)
        if generation is None:
            return PlainTextResponse(_not_ready(service.sync_state()) + "\n", status_code=503)
        return PlainTextResponse(f"ready: generation {generation.number}\n")

    async def status(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(reader.status)
        head: dict[str, Any] = {"source": service.source, "data_dir": str(reader.data_dir)}
        return JSONResponse({**head, **body, "sync": service.sync_state()}, headers={"Cache-Control": "no-store"})

    async def status_page(request: Request) -> Response:
        context = await anyio.to_thread.run_sync(status_context, reader, service.source, service.sync_state())
        page = render("status.html", static=STATIC_PREFIX.rstrip("/"), **context)
        return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "no-store"})

    async def to_status_page(request: Request) -> Response:
        return RedirectResponse(PAGE_PATH, status_code=301)

    async def metrics_page(request: Request) -> Response:
        if service.metrics is None:
            return _error(404, "Not found")
        body = await anyio.to_thread.run_sync(service.metrics.render)
        return Response(body, media_type=service.metrics.content_type)

    notifier = Notifier(
        service.notify or (lambda tags: False),
        repository=service.repository,
        token_file=service.notify_token_file,
        token_env=service.notify_token_env,
    )
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            Route(STATUS_PATH, status, methods=["GET"]),
            Route(PAGE_PATH, status_page, methods=["GET"]),
            Route("/_specman", to_status_page, methods=["GET"]),
            Mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR)),
            Route(NOTIFY_PATH, notifier.handle, methods=["POST"]),
        ]
    )


def create_app(data_dir: Path, *, basic_auth: tuple[str, str] | None = None, service: Service | None = None) -> ASGIApp:
    """The application serving ``data_dir`` (see the module docstring); ``basic_auth`` = (user, password).

    With ``service`` (what ``specman serve``'s workers pass: ``specman.runtime.workers``) it also shows the sync
    loop's state, counts and exports metrics and accepts registry notifications; without it, it serves files,
    status and probes only.
    """
    service = service or Service()
    reader = StoreReader(Path(data_dir))
    files = _Files(reader)
    api = _api(reader, service)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        """Files straight to ``_Files`` (the hot path: no router, no Starlette middleware); the rest to ``api``
        (which also answers the server's ``lifespan`` scope, which has no path)."""
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in _API_PATHS and not path.startswith(STATIC_PREFIX):
            await files(scope, receive, send)
        else:
            await api(scope, receive, send)

    app: ASGIApp = Methods(dispatch, post_paths={NOTIFY_PATH})
    if basic_auth is not None:
        app = BasicAuth(app, credentials=basic_auth, open_paths=_OPEN_PATHS)
    if service.metrics is not None:
        app = CountResponses(app, record=service.metrics.record_request)
    return app
