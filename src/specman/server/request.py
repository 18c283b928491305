"""What a request asks for, read from the ASGI scope without a framework: the raw path, the precondition and range
headers, and whether the client prefers a directory as JSON.  Kept out of ``app`` so the hot path's helpers are
small and testable alone."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from starlette.types import Scope

__all__ = ["conditions", "raw_path", "wants_json"]


def raw_path(scope: Scope) -> bytes:
    """The request target's path as the client sent it (still percent-encoded; raw UTF-8 bytes kept as bytes)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.split(b"?", 1)[0]
    return quote(str(scope.get("path", "/")), errors="surrogateescape").encode("ascii")


_CONDITIONS: Final = frozenset(
    {b"if-match", b"if-unmodified-since", b"if-none-match", b"if-modified-since", b"if-range", b"range"}
)


def conditions(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's precondition and range headers (one pass over the raw headers; usually none).  A header
    sent several times is one comma-separated list (RFC 9110 §5.3)."""
    found: dict[str, str] = {}
    for name, value in raw_headers:
        if name in _CONDITIONS:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _quality(accept: str, media: str) -> float:
    """The q-value ``accept`` gives ``media`` exactly (0 when absent).  Hand-written: two media types are all a
    directory offers, a negotiation library would be more code than this."""
    for item in accept.lower().split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        if kind == media:
            for param in params:
                name, _, value = param.partition("=")
                if name.strip() == "q":
                    try:
                        return float(value)
                    except ValueError:
                        return 0.0
            return 1.0
    return 0.0


def wants_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the client prefers a directory as JSON (``application/json`` over ``text/html``): then it gets
    the listing even where an index page exists (``specman migrate``'s crawler asks so)."""
    accept = next((v.decode("latin-1") for k, v in headers if k == b"accept"), "")
    return "json" in accept and _quality(accept, "application/json") > _quality(accept, "text/html")
