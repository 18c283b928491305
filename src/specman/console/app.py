"""The console's ASGI application: routes of the system API over ``Console``, auth guards and JSON errors.

Every answer is JSON; every error is ``{"code", "message"}`` (``ApiError``), including unknown routes (404),
wrong methods (405) and unexpected failures (500, logged, no traceback in the body).  ``guarded`` wraps each
endpoint: ``session`` endpoints need a valid session token (cookie or ``Authorization`` header, see
``specman.console.auth``), ``service`` endpoints the service token, ``public`` ones nothing (login, ``/healthz``,
``/openapi.json``).  Blocking work (SQLite, argon2, registries, HTTP) runs in a thread.  The web pages
(``specman.console.pages``) share the application; every state change, API or page script, passes the
cross-origin check of ``specman.console.csrf``.

``specman.runtime.workers.console_app`` is the factory granian calls in each worker: it builds the console with
``build_console`` from the settings ``specman console`` wrote to its run directory (file paths, never a secret).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from specman.console.auth import Authenticator, token_from_request
from specman.console.bodies import read_body, read_json_object
from specman.console.crypto import SecretBox, load_or_create_key
from specman.console.csrf import OriginCheck
from specman.console.errors import ApiError
from specman.console.openapi import openapi_document
from specman.console.pages import Pages
from specman.console.service import Console, rfc3339
from specman.console.storage import open_storage
from specman.webui import SecurityHeaders

__all__ = ["build_console", "create_app"]

_HEADERS: Final = {"Cache-Control": "no-store"}
Access = Literal["public", "session", "service"]
Endpoint = Callable[[Request], Awaitable[Response]]
P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("specman.console")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**_HEADERS, **(headers or {})})


def _error(exc: ApiError) -> JSONResponse:
    return _json(exc.body(), exc.status, exc.headers)


async def _thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _tokens(request: Request) -> list[str]:
    return token_from_request(request.headers.get("cookie"), request.headers.get("authorization"))


class Api:
    """The endpoints; each one is a method taking the request (see ``routes``)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.auth = console.auth

    def guarded(self, access: Access, endpoint: Endpoint) -> Endpoint:
        async def handle(request: Request) -> Response:
            try:
                if access == "session":
                    user = await _thread(self.auth.user_for, _tokens(request))
                    if user is None:
                        raise ApiError(
                            401, "Unauthorized", "a valid session token is required (POST /v1/auth/syslogin)"
                        )
                    request.state.user = user
                elif access == "service" and not any(self.auth.is_service_token(t) for t in _tokens(request)):
                    raise ApiError(401, "Unauthorized", "this endpoint requires the service token")
                return await endpoint(request)
            except ApiError as exc:
                return _error(exc)
            except Exception:
                log.exception("Request failed", extra={"fields": {"method": request.method, "path": request.url.path}})
                return _error(ApiError(500, "InternalError", "internal error (see the console's log)"))

        return handle

    # -- public ---------------------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())

    async def login(self, request: Request) -> Response:
        body = await read_json_object(request)
        username = body.string("username", required=True, max_length=256)
        password = body.string("password", required=True, max_length=1024)
        client = request.client.host if request.client else "unknown"
        try:
            result = await _thread(self.auth.login, username, password, client)
        except ApiError as exc:
            log.warning("Login failed", extra={"fields": {"user": username[:64], "client": client, "code": exc.code}})
            raise
        log.info("Login", extra={"fields": {"user": username[:64], "client": client}})
        response = _json({"Authorization": result.token, "expiresAt": rfc3339(result.expires_at)})
        if request.query_params.get("setCookie", "").lower() == "true":
            response.set_cookie(
                "Authorization",
                result.token,
                max_age=int(self.auth.token_ttl),
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    # -- session --------------------------------------------------------------------------------------------
    async def logout(self, request: Request) -> Response:
        for token in _tokens(request):
            await _thread(self.auth.logout, token)
        response = Response(status_code=204, headers=_HEADERS)
        response.delete_cookie("Authorization", path="/", httponly=True, samesite="strict")
        return response

    async def get_scar(self, request: Request) -> Response:
        return _json(await _thread(self.console.get_scar))

    async def put_scar(self, request: Request) -> Response:
        body = await read_json_object(request)
        await _thread(self.console.put_scar, body)
        log.info("SCAR endpoint configured", extra={"fields": {"user": request.state.user}})
        return Response(status_code=204, headers=_HEADERS)

    async def list_registries(self, request: Request) -> Response:
        return _json(await _thread(self.console.list_registries))

    async def create_registry(self, request: Request) -> Response:
        created = await _thread(self.console.create_registry, await read_json_object(request))
        log.info("Registry created", extra={"fields": {"uid": created["uid"], "endpoint": created["endpoint"]}})
        return _json(created, 201, {"Location": f"/v1/registries/oci/{created['uid']}"})

    async def get_registry(self, request: Request) -> Response:
        return _json(await _thread(self.console.get_registry, request.path_params["uid"]))

    async def put_registry(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        body = await read_json_object(request)
        return _json(await _thread(self.console.update_registry, uid, body))

    async def delete_registry(self, request: Request) -> Response:
        await _thread(self.console.delete_registry, request.path_params["uid"])
        return Response(status_code=204, headers=_HEADERS)

    async def validate_registry(self, request: Request) -> Response:
        return _json(await _thread(self.console.validate_body, await read_json_object(request)))

    async def validate_stored_registry(self, request: Request) -> Response:
        await read_body(request)  # any body is ignored, but bounded
        return _json(await _thread(self.console.validate_stored, request.path_params["uid"]))

    async def list_jobs(self, request: Request) -> Response:
        return _json(await _thread(self.console.list_jobs))

    async def get_job(self, request: Request) -> Response:
        return _json(await _thread(self.console.job, request.path_params["job"]))

    async def run_job(self, request: Request) -> Response:
        await read_body(request)
        await _thread(self.console.run_job, request.path_params["job"])
        return Response(status_code=204, headers=_HEADERS)

    async def clouds(self, request: Request) -> Response:
        return _json(await _thread(self.console.clouds))

    async def instance_types(self, request: Request) -> Response:
        return _json(await _thread(self.console.cloud_data, request.path_params["cloud"], "instanceTypes"))

    async def storage_types(self, request: Request) -> Response:
        return _json(await _thread(self.console.cloud_data, request.path_params["cloud"], "storageTypes"))

    # -- service --------------------------------------------------------------------------------------------
    async def spectro_source(self, request: Request) -> Response:
        return _json(await _thread(self.console.spectro_source))

    def routes(self) -> list[Route]:
        table: list[tuple[str, Access, Endpoint, list[str]]] = [
            ("/healthz", "public", self.healthz, ["GET"]),
            ("/openapi.json", "public", self.openapi, ["GET"]),
            ("/v1/auth/syslogin", "public", self.login, ["POST"]),
            ("/v1/auth/logout", "session", self.logout, ["POST"]),
            ("/v1/system/config/scar", "session", self.get_scar, ["GET"]),
            ("/v1/system/config/scar", "session", self.put_scar, ["PUT"]),
            ("/v1/registries/oci", "session", self.list_registries, ["GET"]),
            ("/v1/registries/oci", "session", self.create_registry, ["POST"]),
            ("/v1/registries/oci/validate", "session", self.validate_registry, ["POST"]),
            ("/v1/registries/oci/{uid}", "session", self.get_registry, ["GET"]),
            ("/v1/registries/oci/{uid}", "session", self.put_registry, ["PUT"]),
            ("/v1/registries/oci/{uid}", "session", self.delete_registry, ["DELETE"]),
            ("/v1/registries/oci/{uid}/validate", "session", self.validate_stored_registry, ["POST"]),
            ("/v1/jobs/internal", "session", self.list_jobs, ["GET"]),
            ("/v1/jobs/internal/{job}", "session", self.get_job, ["GET"]),
            ("/v1/jobs/internal/{job}/run", "session", self.run_job, ["GET", "POST"]),
            ("/v1/clouds", "session", self.clouds, ["GET"]),
            ("/v1/clouds/{cloud}/instanceTypes", "session", self.instance_types, ["GET"]),
            ("/v1/clouds/{cloud}/storageTypes", "session", self.storage_types, ["GET"]),
            ("/v1/system/specman/source", "service", self.spectro_source, ["GET"]),
        ]
        by_path: dict[str, dict[str, Endpoint]] = {}
        for path, access, endpoint, methods in table:
            for method in methods:
                by_path.setdefault(path, {})[method] = self.guarded(access, endpoint)
        return [Route(path, _dispatch(handlers), methods=_ALL_METHODS) for path, handlers in by_path.items()]


_ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def _dispatch(handlers: dict[str, Endpoint]) -> Endpoint:
    """One endpoint per path: the method's handler, or 405 naming every method the path allows."""
    allowed = sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])})

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            return _error(
                ApiError(
                    405,
                    "MethodNotAllowed",
                    f"method {request.method[:20]} not allowed (allowed: {', '.join(allowed)})",
                    headers={"Allow": ", ".join(allowed)},
                )
            )
        return await handler(request)

    return dispatch


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "HTTPError")
    message = {404: f"no such endpoint: {request.url.path[:200]}", 405: f"method {request.method} not allowed"}
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return _error(ApiError(status, code, message.get(status, "request failed"), headers=headers))


def create_app(console: Console) -> ASGIApp:
    """The system API under ``/v1/`` and the web pages (``specman.console.pages``) over one ``Console``, behind the
    cross-origin check for state changes (``specman.console.csrf``) and the pages' security headers."""
    app = Starlette(
        routes=[*Api(console).routes(), *Pages(console).routes()],
        exception_handlers={HTTPException: _http_error},
    )
    return SecurityHeaders(OriginCheck(app))


def build_console(
    data_dir: Path,
    *,
    database: str | None = None,
    secret_key_file: Path | None = None,
    service_token: str | None = None,
    token_ttl: float = 86400.0,
) -> Console:
    """The console over ``data_dir`` (the command has created the key, the schema and the admin already)."""
    storage = open_storage(database or data_dir / "console.db")
    key = load_or_create_key(secret_key_file or data_dir / "secret.key", create=False)
    auth = Authenticator(storage, token_ttl=token_ttl, service_token=service_token)
    return Console(storage, SecretBox(key), auth)
