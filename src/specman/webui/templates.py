"""The Jinja2 environment of specman's pages: autoescaping, and filters for sizes, times and durations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2

__all__ = ["STATIC_DIR", "human_bytes", "human_duration", "human_time", "render"]

_HERE: Final = Path(__file__).resolve().parent
STATIC_DIR: Final = _HERE / "static"


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def human_time(value: str | float | None) -> str:
    """An RFC 3339 UTC time (or Unix seconds) as ``2024-12-06 12:43:14 UTC``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(value, UTC)
    else:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return value
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(bytes=human_bytes, duration=human_duration, time=human_time)


def render(template: str, **context: Any) -> str:
    """The page ``template`` rendered with ``context`` (every value escaped unless a template says otherwise)."""
    return _ENV.get_template(template).render(**context)
