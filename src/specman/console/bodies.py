"""Request bodies: read at most ``MAX_BODY`` bytes, parse JSON, check each field's presence and type.

``read_json_object`` answers 413 for a body over 1 MiB (by ``Content-Length`` or while streaming; the rest of the body,
up to 16 MiB, is read and dropped first so that the client sees the answer), 400 for bytes
that are not JSON, 422 for JSON that is not an object; ``Fields`` takes typed values out of the object and raises
422 naming the field (``ValidationFailed``); ``null`` is not a value of any field.  Unknown fields are ignored, as
the product's API does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request

from specman.console.errors import ApiError

__all__ = ["MAX_BODY", "Fields", "invalid", "read_body", "read_json_object"]

MAX_BODY: Final = 1 << 20


MAX_DRAIN: Final = 16 << 20


def _too_large() -> ApiError:
    return ApiError(413, "PayloadTooLarge", f"request body exceeds {MAX_BODY} bytes", headers={"Connection": "close"})


async def _drain(stream: AsyncIterator[bytes], seen: int) -> None:
    """Read (and drop) the rest of an oversize body, up to ``MAX_DRAIN`` bytes, so the client reads the 413 instead
    of a connection reset while it is still sending (nginx's lingering close)."""
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > MAX_DRAIN:
                return
    except (ClientDisconnect, RuntimeError):
        return


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY:
        await _drain(request.stream(), 0)
        raise _too_large()
    body = bytearray()
    stream = request.stream()
    try:
        async for chunk in stream:
            body += chunk
            if len(body) > MAX_BODY:
                await _drain(stream, len(body))
                raise _too_large()
    except ClientDisconnect:
        raise ApiError(400, "BadRequest", "the client closed the connection before sending the body") from None
    return bytes(body)


async def read_json_object(request: Request) -> Fields:
    raw = await read_body(request)
    if not raw.strip():
        raise ApiError(400, "InvalidJson", "a JSON object is required as the request body")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "InvalidJson", f"the request body is not valid JSON{where}") from None
    except RecursionError:
        raise ApiError(400, "InvalidJson", "the request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError(422, "ValidationFailed", "the request body must be a JSON object")
    return Fields(value)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "ValidationFailed", f"{field}: {message}", field=field)


class Fields:
    """Typed access to the fields of a JSON object body; every problem is a 422 naming the field."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def __contains__(self, name: str) -> bool:
        return name in self.value

    def string(self, name: str, *, required: bool = False, default: str = "", max_length: int = 4096) -> str:
        if name not in self:
            if required:
                raise _invalid(name, "is required")
            return default
        value = self.value[name]
        if not isinstance(value, str):
            raise _invalid(name, f"must be a string, not {_kind(value)}")
        if len(value) > max_length:
            raise _invalid(name, f"is longer than {max_length} characters")
        if "\x00" in value:
            raise _invalid(name, "must not contain NUL characters")
        return value

    def boolean(self, name: str, *, default: bool = False) -> bool:
        if name not in self:
            return default
        value = self.value[name]
        if not isinstance(value, bool):
            raise _invalid(name, f"must be a boolean, not {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def invalid(field: str, message: str) -> ApiError:
    """A 422 for ``field`` (for checks beyond the type: URL syntax, PEM, names)."""
    return _invalid(field, message)
