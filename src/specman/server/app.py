"""The ASGI application of ``specman serve``: the published view, per-version trees, status and probes.

``create_app(data_dir)`` reads only what ``specman.store`` published.  Every request checks ``<data_dir>/current``
with one ``readlink`` and reloads the generation record when the link moved, so a sync in another process is
visible at once and a request never mixes two generations (it resolves its tree once).

Paths go through ``paths.parse_request_path`` (on the raw, still encoded path) and ``paths.confine``;
preconditions and ranges through ``conditional``; bodies, ETags and listings through ``files``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from specman.metrics import CONTENT_TYPE, Metrics
from specman.runtime import RunDir
from specman.server.conditional import RangeNotSatisfiable, not_modified, parse_range, range_applies
from specman.server.files import FileIndex, html_listing, listing, send_file, send_whole_file
from specman.server.guards import BasicAuth, CountResponses, Methods, read_basic_auth
from specman.server.notify import Notifier
from specman.server.paths import PathRejected, RequestPath, parse_request_path
from specman.server.status_page import status_context
from specman.store import Generation, Store, load_current
from specman.webui import HEADERS, STATIC_DIR, render

__all__ = ["VERSIONS_PREFIX", "app_from_env", "create_app"]

VERSIONS_PREFIX: Final = "/_specman/versions/"
NOTIFY_PATH: Final = "/_specman/notify"
STATUS_PATH: Final = "/_specman/status"
PAGE_PATH: Final = "/_specman/"
STATIC_PREFIX: Final = "/_specman/static/"
_OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics", NOTIFY_PATH})  # no Basic auth
_API_PATHS: Final = _OPEN_PATHS | {STATUS_PATH, PAGE_PATH, "/_specman"}  # and STATIC_PREFIX; the rest are files


class _Current:
    """The published generation, reloaded when ``current`` points elsewhere (one ``readlink`` per request)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir)  # never opened: only its read-only lookups are used
        self._link_path = os.path.join(data_dir, "current")
        self._lock = threading.Lock()
        self._link: str | None = None
        self._generation: Generation | None = None
        self.tree: Path | None = None  # the generation's tree, as of the last ``get``

    def get(self) -> Generation | None:
        try:
            link: str | None = os.readlink(self._link_path)
        except OSError:
            link = None
        with self._lock:
            if link != self._link or (link is not None and self._generation is None):
                self._generation = load_current(self.data_dir) if link is not None else None
                self.tree = self._generation.tree if self._generation is not None else None
                self._link = link
            return self._generation


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

    def __init__(self, current: _Current) -> None:
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
        generation = self.current.get()
        if raw.startswith(VERSIONS_PREFIX):
            tag, _, rest = raw[len(VERSIONS_PREFIX) :].partition("/")
            tag_path = parse_request_path("/" + tag)
            if len(tag_path.names) != 1:
                raise PathRejected("a tag is required after /_specman/versions/")
            state = generation.tags.get(tag_path.names[0]) if generation is not None else None
            tree = self.current.store.versions_dir / state.version / "tree" if state is not None else None
            return tree, "/" + rest, VERSIONS_PREFIX + tag
        return (self.current.tree if generation is not None else None), raw, ""

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


def _not_ready(sync: dict[str, Any] | None) -> str:
    """Why ``/readyz`` says no: nothing published yet, and what the sync loop is doing about it."""
    reason = "not ready: no generation published yet"
    if sync and sync.get("last_error"):
        return f"{reason}; last sync failed ({sync.get('last_error_reason')}): {sync['last_error']}"
    if sync and sync.get("state") == "ok":
        return f"{reason}; the last sync found no tag to publish"
    return f"{reason}; the first sync is running"


def create_app(data_dir: Path, *, basic_auth: tuple[str, str] | None = None, run: RunDir | None = None) -> ASGIApp:
    """The application serving ``data_dir`` (see the module docstring); ``basic_auth`` = (user, password).

    With ``run`` (the run directory of ``specman serve``) it also shows the sync loop's state, counts and
    exports metrics and accepts registry notifications; without it, it serves files, status and probes only.
    """
    data_dir = Path(data_dir)
    current = _Current(data_dir)
    files = _Files(current)
    config = run.config() if run is not None else None
    metrics = Metrics(run.metrics_dir) if run is not None else None

    def sync_state() -> dict[str, Any] | None:
        return run.read_status() if run is not None else None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        generation = await anyio.to_thread.run_sync(current.get)
        if generation is None:
            return PlainTextResponse(_not_ready(sync_state()) + "\n", status_code=503)
        return PlainTextResponse(f"ready: generation {generation.number}\n")

    async def status(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(current.store.status)
        head: dict[str, Any] = {"source": config.source if config else None, "data_dir": str(data_dir)}
        sync = sync_state()
        signatures = sync.get("signatures") if sync else None
        body = {**head, **body, "signatures": signatures or {}, "verify": sync.get("verify_policy") if sync else None}
        body["sync"] = sync
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def status_page(request: Request) -> Response:
        context = await anyio.to_thread.run_sync(
            status_context, current.store, config.source if config else None, sync_state()
        )
        page = render("status.html", static=STATIC_PREFIX.rstrip("/"), **context)
        return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "no-store"})

    async def to_status_page(request: Request) -> Response:
        return RedirectResponse(PAGE_PATH, status_code=301)

    async def metrics_page(request: Request) -> Response:
        if metrics is None:
            return _error(404, "Not found")
        return Response(await anyio.to_thread.run_sync(metrics.render), media_type=CONTENT_TYPE)

    notifier = Notifier(
        run.notify if run is not None else (lambda tags: False),
        repository=config.repository if config else None,
        token_file=config.notify_token_file if config else None,
        token_env=config.notify_token_env if config else None,
    )
    api = Starlette(
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
    if metrics is not None:
        app = CountResponses(app, record=metrics.record_request)
    return app


def app_from_env() -> ASGIApp:
    """Factory for the server workers: ``specman serve`` exported its run directory (``specman.runtime``)."""
    run = RunDir.from_env()
    config = run.config()
    Store(Path(config.data_dir)).drop_inherited_lock()  # forked with the main process's lock descriptor
    auth = read_basic_auth(Path(config.basic_auth_file)) if config.basic_auth_file else None
    return create_app(Path(config.data_dir), basic_auth=auth, run=run)
