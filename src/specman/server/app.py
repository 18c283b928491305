"""The ASGI application of ``specman serve``: the published view, per-version trees, status and probes.

``create_app(data_dir)`` reads only what ``specman.store`` published, through its ``StoreReader``: every request
checks ``<data_dir>/current`` with one ``readlink`` and the generation record is reloaded when the link moved, so a
sync in another process is visible at once and a request never mixes two generations (it resolves its tree once).
It imports nothing of the process runtime: ``specman serve``'s workers hand it a ``Service`` (sync state, metrics,
notifications) built by ``specman.runtime.workers``.

What the request asks is read by ``request`` (raw path, precondition headers, JSON preference).  Paths go through
``paths.parse_request_path`` (on the raw bytes of the path, still encoded) and ``paths.confine``; preconditions
and ranges through ``conditional``; bodies, ETags and listings through ``files``.

URL space: ``/_specman/`` is specman's own (status, status page, versions, notify, ``healthz``, ``readyz``,
``metrics``): nothing under it comes from a tree.  Everything else is the published tree; ``/healthz``,
``/readyz`` and ``/metrics`` answer as probes only where the tree has no entry of that name (its content wins).
A directory answers with its ``index.html`` when it has one (unless ``index_pages`` is off), else its listing;
``/dir`` without its slash is redirected (301) to ``/dir/``, as nginx does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import unquote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from specman.server.conditional import RangeNotSatisfiable, evaluate, parse_range, range_applies
from specman.server.files import (
    FileEntry,
    FileIndex,
    display_name,
    html_listing,
    listing,
    send_file,
    send_whole_file,
    url_quote,
)
from specman.server.guards import BasicAuth, CountResponses, Methods
from specman.server.notify import Notifier
from specman.server.paths import PathRejected, RequestPath, parse_request_path
from specman.server.request import conditions, raw_path, wants_json
from specman.server.status_page import status_context
from specman.store import StoreReader
from specman.webui import HEADERS, STATIC_DIR, render

__all__ = ["VERSIONS_PREFIX", "Exporter", "Service", "create_app"]

VERSIONS_PREFIX: Final = "/_specman/versions/"
NOTIFY_PATH: Final = "/_specman/notify"
STATUS_PATH: Final = "/_specman/status"
PAGE_PATH: Final = "/_specman/"
STATIC_PREFIX: Final = "/_specman/static/"
PROBES: Final = ("healthz", "readyz", "metrics")  # at /_specman/<name>, and at /<name> unless the tree has it
_OPEN_PATHS: Final = frozenset({*(f"/_specman/{name}" for name in PROBES), NOTIFY_PATH})  # no Basic auth
_ALIASES: Final = frozenset(f"/{name}" for name in PROBES)


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers={"Cache-Control": "no-store"})


_PARSED_PATHS: Final = 8192
_INDEX_PAGE: Final = "index.html"


def _url(names: tuple[str, ...]) -> str:
    """``names`` as a percent-encoded URL path ending in ``/``."""
    return "".join(url_quote(name) + "/" for name in names)


class _Files:
    """GET/HEAD of files and directories under the current generation's tree or one version's tree."""

    def __init__(self, current: StoreReader, *, index_pages: bool = True) -> None:
        self.current = current
        self.index = FileIndex()
        self.index_pages = index_pages
        self._paths: dict[bytes, RequestPath] = {}
        self._in_tree: dict[tuple[Path, str], bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(scope, send)
        except PathRejected as exc:
            response = _error(exc.status, f"Bad request: {exc}" if exc.status == 400 else str(exc))
        if response is not None:
            await response(scope, receive, send)

    async def in_tree(self, name: str) -> bool:
        """Whether the published tree has an entry ``name`` at its root (remembered: published trees never
        change).  The root aliases of the probes give way to such content."""
        generation = self.current.current()
        tree = generation.tree if generation is not None else None
        if tree is None:
            return False
        key = (tree, name)
        found = self._in_tree.get(key)
        if found is None:
            found = await self.index.lookup(tree, RequestPath((name,), False)) is not None
            if len(self._in_tree) >= _PARSED_PATHS:
                self._in_tree.clear()
            self._in_tree[key] = found
        return found

    def _root(self, path: RequestPath) -> tuple[Path | None, RequestPath, str]:
        """The tree to serve ``path`` from, the path inside it, and the URL prefix of that tree.

        Names under ``/_specman/`` never reach the published tree: the prefix is reserved for specman."""
        generation = self.current.current()
        if path.names[:1] != ("_specman",):
            return (generation.tree if generation is not None else None), path, ""
        if path.names[1:2] != ("versions",) or len(path.names) < 3:
            raise PathRejected("Not found: /_specman/versions/<tag>/ serves one version", status=404)
        tag = path.names[2]
        state = generation.tags.get(tag) if generation is not None else None
        tree = self.current.version_tree(state) if state is not None else None
        inner = RequestPath(path.names[3:], path.directory)
        return tree, inner, VERSIONS_PREFIX + url_quote(tag)

    def _parse(self, raw: bytes) -> RequestPath:
        """``parse_request_path``, remembered for the paths clients ask for again and again (bounded)."""
        path = self._paths.get(raw)
        if path is None:
            path = parse_request_path(raw)
            if len(self._paths) >= _PARSED_PATHS:
                self._paths.clear()
            self._paths[raw] = path
        return path

    async def _respond(self, scope: Scope, send: Send) -> Response | None:
        root, path, prefix = self._root(self._parse(raw_path(scope)))
        entry = await self.index.lookup(root, path) if root is not None else None
        if root is None or entry is None:
            return _error(404, "Not found")
        if entry.is_dir:
            if not path.directory:  # as nginx: the slash form, so that relative links resolve
                query = scope.get("query_string", b"").decode("latin-1")
                location = prefix + "/" + _url(path.names) + (f"?{query}" if query else "")
                return RedirectResponse(location, status_code=301)
            if self.index_pages and not wants_json(scope["headers"]):
                page = await self.index.lookup(root, RequestPath((*path.names, _INDEX_PAGE), False))
                if page is not None and not page.is_dir:
                    return await self._file(scope, send, page)
            return await self._listing(Request(scope), root, entry.target, path, prefix)
        if path.directory:
            return _error(404, "Not found")
        return await self._file(scope, send, entry)

    async def _file(self, scope: Scope, send: Send, entry: FileEntry) -> Response | None:
        asked = conditions(scope["headers"])
        if not asked:  # the common case: the whole file, headers prepared once per file
            await send_whole_file(scope, send, entry)
            return None
        headers = {
            "ETag": entry.etag,
            "Last-Modified": entry.last_modified,
            "Accept-Ranges": "bytes",
            "Cache-Control": "no-cache",
        }
        status = evaluate(entry.etag, entry.mtime, asked)
        if status == 304:
            return Response(status_code=304, headers=headers)
        if status is not None:
            return _error(status, "Precondition failed")
        headers["Content-Type"] = entry.content_type
        ranges = None
        wanted = asked.get("range") if scope["method"] == "GET" else None  # Range is for GET only (§14.2)
        if wanted is not None and range_applies(entry.etag, entry.mtime, asked.get("if-range")):
            try:
                ranges = parse_range(wanted, entry.size)
            except RangeNotSatisfiable as exc:
                return Response(
                    b"Range not satisfiable\n",
                    status_code=416,
                    headers={"Content-Range": str(exc), "Content-Type": "text/plain; charset=utf-8"},
                )
        await send_file(scope, send, entry.target, headers, entry.size, ranges)
        return None

    async def _listing(self, request: Request, root: Path, target: Path, path: RequestPath, prefix: str) -> Response:
        """The listing (HTML, or JSON on request) with a strong ETag of its bytes, preconditions evaluated."""
        entries = await anyio.to_thread.run_sync(listing, root, target)
        if wants_json(request.scope["headers"]):
            body = json.dumps(entries, ensure_ascii=True, separators=(",", ":")).encode()
            media_type = "application/json"
        else:
            shown = unquote(prefix) + "/" + "".join(display_name(name) + "/" for name in path.names)
            body = html_listing(shown, entries).encode("utf-8")
            media_type = "text/html; charset=utf-8"
        headers = {"ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"', "Cache-Control": "no-cache", "Vary": "Accept"}
        status = evaluate(headers["ETag"], None, conditions(request.scope["headers"]))
        if status == 304:
            return Response(status_code=304, headers=headers)
        if status is not None:
            return _error(status, "Precondition failed")
        return Response(body, media_type=media_type, headers=headers)


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
        sync = service.sync_state()
        signatures = sync.get("signatures") if sync else None
        verify = sync.get("verify_policy") if sync else None
        body = {**head, **body, "signatures": signatures or {}, "verify": verify, "sync": sync}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

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
    probes = {"healthz": healthz, "readyz": readyz, "metrics": metrics_page}
    return Starlette(
        routes=[
            *(Route(f"/_specman/{name}", probes[name], methods=["GET"]) for name in PROBES),
            *(Route(f"/{name}", probes[name], methods=["GET"]) for name in PROBES),
            Route(STATUS_PATH, status, methods=["GET"]),
            Route(PAGE_PATH, status_page, methods=["GET"]),
            Route("/_specman", to_status_page, methods=["GET"]),
            Mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR)),
            Route(NOTIFY_PATH, notifier.handle, methods=["POST"]),
        ]
    )


def create_app(
    data_dir: Path,
    *,
    basic_auth: tuple[str, str] | None = None,
    service: Service | None = None,
    index_pages: bool = True,
) -> ASGIApp:
    """The application serving ``data_dir`` (see the module docstring); ``basic_auth`` = (user, password).

    With ``service`` (what ``specman serve``'s workers pass: ``specman.runtime.workers``) it also shows the sync
    loop's state, counts and exports metrics and accepts registry notifications; without it, it serves files,
    status and probes only.  ``index_pages``: a directory's ``index.html`` answers for it (as nginx); False always
    lists.
    """
    service = service or Service()
    reader = StoreReader(Path(data_dir))
    files = _Files(reader, index_pages=index_pages)
    api = _api(reader, service)

    async def to_api(scope: Scope) -> bool:
        """Whether ``api`` answers (else ``_Files``): ``/_specman/`` but its versions, and the root aliases of
        the probes where the tree has no such entry (also the server's ``lifespan`` scope, which has no path)."""
        path: str = scope.get("path", "")
        if scope["type"] != "http":
            return True
        if path.startswith("/_specman"):
            return path in ("/_specman", PAGE_PATH) or (path[9:10] == "/" and not path.startswith(VERSIONS_PREFIX))
        return path in _ALIASES and not await files.in_tree(path[1:])

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        """Files straight to ``_Files`` (the hot path: no router, no Starlette middleware); the rest to ``api``."""
        await (api if await to_api(scope) else files)(scope, receive, send)

    async def open_request(scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return path in _OPEN_PATHS or (path in _ALIASES and await to_api(scope))

    app: ASGIApp = Methods(dispatch, post_paths={NOTIFY_PATH})
    if basic_auth is not None:
        app = BasicAuth(app, credentials=basic_auth, is_open=open_request)
    if service.metrics is not None:
        app = CountResponses(app, record=service.metrics.record_request)
    return app
