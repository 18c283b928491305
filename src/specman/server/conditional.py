"""HTTP preconditions and byte ranges for file responses (RFC 9110 §13 and §14), independent of the framework.

Hand-written because the frameworks keep theirs private (Starlette's ``FileResponse`` parses ``Range`` inside
the response class) or skip parts of the RFC (aiohttp serves a single range only), and specman wants the same
answers whichever server runs it:

* ``evaluate``: the preconditions in the order of §13.2.2 — ``If-Match`` (strong comparison, lists, ``*``: 412
  when false), else ``If-Unmodified-Since`` (412 when the representation changed after the date), then
  ``If-None-Match`` (weak comparison: 304 for GET/HEAD), else ``If-Modified-Since`` (304).  A date that does
  not parse, or a date condition on a representation without a modification date (a listing), is ignored,
  as §13.1.3 and §13.1.4 require;
* ``not_modified``: steps 3 and 4 of that order alone;
* ``parse_range``: ``bytes=a-b``, ``a-``, ``-n`` and lists.  As nginx (§14.2 allows both this and ignoring):
  an invalid ``bytes`` specifier (``5-4``, ``x-y``) and ranges none of which is satisfiable →
  ``RangeNotSatisfiable`` (416 with ``Content-Range: bytes */size``); another unit, or an empty representation,
  → ``None`` (the whole representation, 200).  Overlapping or many small ranges are coalesced and capped, so a
  client cannot make one request fan out;
* ``range_applies``: ``If-Range`` with a strong ETag or an HTTP date (step 5; ``Range`` is for GET only, §14.2).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

__all__ = [
    "MAX_RANGES",
    "RangeNotSatisfiable",
    "evaluate",
    "http_date",
    "not_modified",
    "parse_range",
    "range_applies",
]

MAX_RANGES = 16


class RangeNotSatisfiable(ValueError):
    """No requested range overlaps the representation (answer 416)."""


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def _tags(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


def _strong_match(etag: str, header: str) -> bool:
    """``If-Match``: ``*`` or a listed tag equal to ``etag`` by strong comparison (neither weak)."""
    if etag.startswith("W/"):
        return any(c == "*" for c in _tags(header))
    return any(c == "*" or c == etag for c in _tags(header))


def not_modified(
    etag: str, last_modified: float | None, *, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """True when a GET/HEAD can be answered 304 (§13.2.2 steps 3 and 4)."""
    if if_none_match is not None:
        return any(c == "*" or _opaque(c) == _opaque(etag) for c in _tags(if_none_match))
    since = _parse_date(if_modified_since)
    return since is not None and last_modified is not None and int(last_modified) <= since.timestamp()


def evaluate(etag: str, last_modified: float | None, headers: dict[str, str]) -> int | None:
    """The status a GET/HEAD must be answered with instead of the representation (412 or 304), or None.

    ``headers``: the request's precondition headers by lower-case name; ``last_modified`` None when the
    representation has no modification date (date conditions are then ignored)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _strong_match(etag, if_match):
            return 412
    elif last_modified is not None:
        since = _parse_date(headers.get("if-unmodified-since"))
        if since is not None and int(last_modified) > since.timestamp():
            return 412
    if not_modified(
        etag,
        last_modified,
        if_none_match=headers.get("if-none-match"),
        if_modified_since=headers.get("if-modified-since"),
    ):
        return 304
    return None


def range_applies(etag: str, last_modified: float | None, if_range: str | None) -> bool:
    """Whether a ``Range`` is honoured given ``If-Range`` (strong ETag match or the exact date)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return not etag.startswith("W/") and value == etag
    when = _parse_date(value)
    return when is not None and last_modified is not None and int(last_modified) == int(when.timestamp())


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges ``[(start, end_inclusive), ...]`` to send, or None to send the whole representation."""
    if header is None or size == 0:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None  # a unit this server does not know: ignored (§14.2 requires it)
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash or not (first.isdigit() or (not first and last.isdigit())) or (last and not last.isdigit()):
            raise RangeNotSatisfiable(f"bytes */{size}")  # syntactically invalid: refused, as nginx does
        if not first:
            length = int(last)
            if length == 0:
                continue
            ranges.append((max(size - length, 0), size - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            raise RangeNotSatisfiable(f"bytes */{size}")
        if start < size:
            ranges.append((start, min(int(last), size - 1) if last else size - 1))
    if not ranges:
        raise RangeNotSatisfiable(f"bytes */{size}")
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    if len(merged) > MAX_RANGES:
        return [(merged[0][0], merged[-1][1])]  # too many pieces: one covering range instead of a fan-out
    return merged
