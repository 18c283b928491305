"""The web pages' pieces without a browser: the cross-origin rule, the sync history and its chart, the filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import Headers

from specman.console.csrf import cross_origin_problem
from specman.errors import SyncError
from specman.server.status_page import sync_chart
from specman.sync.reconcile import SyncResult
from specman.sync.status import HISTORY_MAX, SyncStatus
from specman.webui.templates import human_bytes, human_duration, human_time, render


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # curl, the documentation's script, specman's own tools
        ({"host": "console:8444", "origin": "https://console:8444"}, False),
        ({"host": "console:8444", "origin": "http://console:8444"}, False),  # behind a TLS-terminating proxy
        ({"host": "Console:8444", "origin": "https://console:8444"}, False),
        ({"host": "console:8444", "origin": "https://evil.example"}, True),
        ({"host": "console:8444", "origin": "https://console:9999"}, True),
        ({"host": "console:8444", "origin": "null"}, True),
        ({"host": "console:8444", "origin": "garbage"}, True),
        ({"origin": "https://console:8444"}, True),  # no Host to compare with
        ({"host": "console:8444", "sec-fetch-site": "same-origin"}, False),
        ({"host": "console:8444", "sec-fetch-site": "none"}, False),  # typed into the address bar
        ({"host": "console:8444", "sec-fetch-site": "cross-site"}, True),
        ({"host": "console:8444", "sec-fetch-site": "same-site"}, True),
    ],
)
def test_cross_origin_rule(headers: dict[str, str], refused: bool) -> None:
    assert (cross_origin_problem(Headers(headers)) is not None) is refused


def _result(ok: bool, downloaded: int) -> SyncResult:
    now = datetime.now(UTC)
    return SyncResult(
        source="r",
        started=now,
        finished=now,
        duration=0.25,
        listed=("1",),
        selected=("1",),
        fetched=("1",),
        skipped=(),
        failed={} if ok else {"1": "bad"},
        removed=(),
        generation=1,
        digests={},
        bytes_downloaded=downloaded,
    )


def test_sync_history_is_bounded() -> None:
    status = SyncStatus(source="r")
    status.record(_result(True, 100), None, served_bytes=1000)
    status.record(None, SyncError("no source", reason="SourceFailed", retryable=True))
    status.record(_result(False, 0), None, served_bytes=1000)
    assert [(h["ok"], h["downloaded"], h["served"]) for h in status.history] == [
        (True, 100, 1000),
        (False, 0, None),
        (False, 0, 1000),
    ]
    for _ in range(HISTORY_MAX + 5):
        status.record(_result(True, 1), None, served_bytes=5)
    assert len(status.history) == HISTORY_MAX
    assert status.history[-1] == {
        "finished": status.last_finished,
        "duration": 0.25,
        "ok": True,
        "downloaded": 1,
        "served": 5,
    }


def test_sync_chart() -> None:
    assert sync_chart([]) is None
    history = [
        {"finished": "2024-12-06T12:43:14Z", "duration": 1.5, "ok": True, "served": 2048},
        {"finished": "<script>", "duration": None, "ok": False, "served": None},
        {"finished": "2024-12-06T12:44:14Z", "duration": 0.5, "ok": False, "served": 4096},
    ]
    svg = str(sync_chart(history))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg
    assert "&lt;script&gt;" not in svg  # the unknown sync draws no bar
    assert svg.count('class="bar"') == 2
    assert svg.count('class="bar failed"') == 2
    assert "4.0 KiB" in svg
    assert "1.5 s" in svg


def test_filters_and_escaping() -> None:
    assert [human_bytes(v) for v in (None, 0, 1023, 1024, 5 * 1024**3)] == ["–", "0 B", "1023 B", "1.0 KiB", "5.0 GiB"]
    assert [human_duration(v) for v in (None, 0.0123, 2.5, 125)] == ["–", "12 ms", "2.5 s", "2 min 5 s"]
    assert human_time("2024-12-06T12:43:14Z") == "2024-12-06 12:43:14 UTC"
    assert human_time(0) == "1970-01-01 00:00:00 UTC"
    assert human_time("not a time") == "not a time"
    page = render("login.html", static="/static", next="/registries", message="<b>x</b>")
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
