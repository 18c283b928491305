"""Preconditions and byte ranges answer as RFC 9110 says (table-driven)."""

from __future__ import annotations

import pytest

from specman.server.conditional import (
    MAX_RANGES,
    RangeNotSatisfiable,
    evaluate,
    http_date,
    not_modified,
    parse_range,
    range_applies,
)

ETAG = '"sha256-abc"'
MTIME = 1_700_000_000.0


@pytest.mark.parametrize(
    ("inm", "ims", "expected"),
    [
        (ETAG, None, True),
        (f'"x", {ETAG}', None, True),
        (f"W/{ETAG}", None, True),  # weak comparison for If-None-Match
        ("*", None, True),
        ('"other"', None, False),
        ('"other"', http_date(MTIME + 10), False),  # If-None-Match wins over If-Modified-Since
        (None, http_date(MTIME), True),
        (None, http_date(MTIME + 60), True),
        (None, http_date(MTIME - 60), False),
        (None, "not a date", False),
        (None, None, False),
    ],
)
def test_not_modified(inm: str | None, ims: str | None, expected: bool) -> None:
    assert not_modified(ETAG, MTIME, if_none_match=inm, if_modified_since=ims) is expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, [(0, 9)]),
        ("bytes=90-", 100, [(90, 99)]),
        ("bytes=-10", 100, [(90, 99)]),
        ("bytes=-500", 100, [(0, 99)]),
        ("bytes=0-999", 100, [(0, 99)]),
        ("bytes=0-4, 10-14", 100, [(0, 4), (10, 14)]),
        ("bytes=10-14,0-4,3-11", 100, [(0, 14)]),  # overlapping ranges coalesced
        ("items=0-5", 100, None),  # another unit: ignored
        ("bytes=0-", 0, None),  # an empty file: the whole (empty) file, as nginx
        ("bytes=-5", 0, None),
        ("bytes=50-60,200-300", 100, [(50, 60)]),
    ],
)
def test_parse_range(header: str | None, size: int, expected: list[tuple[int, int]] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=200-300", 100),
        ("bytes=-0", 100),
        ("bytes=5-1", 100),  # invalid specifiers: refused, as nginx does (RFC 9110 §14.2 allows it)
        ("bytes=abc", 100),
        ("bytes=", 100),
        ("bytes=0-1,x", 100),
    ],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable, match=f"bytes \\*/{size}"):
        parse_range(header, size)


def test_many_ranges_collapse() -> None:
    header = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 5))
    assert parse_range(header, 10_000) == [(0, (MAX_RANGES + 4) * 10 + 1)]


def test_if_range() -> None:
    assert range_applies(ETAG, MTIME, None)
    assert range_applies(ETAG, MTIME, ETAG)
    assert not range_applies(ETAG, MTIME, '"other"')
    assert not range_applies(f"W/{ETAG}", MTIME, f"W/{ETAG}")
    assert range_applies(ETAG, MTIME, http_date(MTIME))
    assert not range_applies(ETAG, MTIME, http_date(MTIME - 1))


D_SAME, D_OLD, D_NEW = http_date(MTIME), http_date(MTIME - 60), http_date(MTIME + 60)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"if-match": ETAG}, None),
        ({"if-match": f'"x", {ETAG}'}, None),
        ({"if-match": "*"}, None),
        ({"if-match": '"other"'}, 412),
        ({"if-match": f"W/{ETAG}"}, 412),  # strong comparison: a weak tag never matches
        ({"if-unmodified-since": D_SAME}, None),
        ({"if-unmodified-since": D_NEW}, None),
        ({"if-unmodified-since": D_OLD}, 412),
        ({"if-unmodified-since": "not a date"}, None),  # ignored (§13.1.4)
        ({"if-match": ETAG, "if-unmodified-since": D_OLD}, None),  # If-Unmodified-Since only without If-Match
        ({"if-match": '"x"', "if-none-match": ETAG}, 412),  # If-Match first
        ({"if-unmodified-since": D_OLD, "if-none-match": ETAG}, 412),
        ({"if-match": ETAG, "if-none-match": ETAG}, 304),
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": '"x"', "if-modified-since": D_SAME}, None),  # If-Modified-Since ignored
        ({"if-modified-since": D_SAME}, 304),
        ({"if-modified-since": D_OLD}, None),
    ],
)
def test_evaluate_in_rfc_order(headers: dict[str, str], expected: int | None) -> None:
    assert evaluate(ETAG, MTIME, headers) == expected


def test_evaluate_without_a_modification_date() -> None:
    """A listing has no Last-Modified: date conditions are ignored, ETag conditions still apply."""
    assert evaluate(ETAG, None, {"if-unmodified-since": D_OLD}) is None
    assert evaluate(ETAG, None, {"if-modified-since": D_NEW}) is None
    assert evaluate(ETAG, None, {"if-none-match": ETAG}) == 304
    assert evaluate(ETAG, None, {"if-match": '"x"'}) == 412
    assert not range_applies(ETAG, None, D_SAME)
