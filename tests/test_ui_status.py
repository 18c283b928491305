"""The status page of a real ``specman serve`` (``/_specman/``) in a real headless Chromium.

``specman serve`` syncs two tags from a real ``docker-registry``; the page lists them (digest, size, files, publish
time) with links into ``/_specman/versions/<tag>/``, and draws the recent syncs.  Then the registry stops: the next
syncs fail and the page says so, with the error, while the tags stay served.  A tag is hostile HTML nowhere here
(OCI tags cannot be), but the error text and the source are escaped like everything else (checked without a browser
in ``tests/test_server.py``-style requests below).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.fixtures.browser import Browser
from tests.fixtures.console import EXAMPLES, push_layout
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess

REPO = "spectro-packs/spectro-manifests/manifest"
TAGS = ("0.0.0", "4.5.13")


def _push(registry: Registry, tag: str, source: Path) -> str:
    options = RegistryOptions(plain_http=True)
    repository = open_repository(parse_reference(f"{registry.host}/{REPO}:{tag}"), options)
    try:
        return str(push_artifact(repository, source, tag).digest)
    finally:
        repository.close()


def _status(server: ServeProcess) -> dict[str, object]:
    with httpx.Client(base_url=server.base, trust_env=False, timeout=10) as client:
        body: dict[str, object] = client.get("/_specman/status").json()
    return body


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_status_page_lists_synced_tags(
    browser: Browser,
    registry_factory: Callable[..., Registry],
    serve_factory: Callable[..., ServeProcess],
    tmp_path: Path,
) -> None:
    registry = registry_factory("plain")
    digests = {
        "0.0.0": _push(registry, "0.0.0", EXAMPLES / "cloud-types"),
        "4.5.13": _push(registry, "4.5.13", EXAMPLES),
    }
    server = serve_factory(
        [f"{registry.host}/{REPO}", "--plain-http"], tmp_path / "data", tls=False, extra_args=["--interval", "1s"]
    )

    def synced(runs: int) -> bool:
        status = _status(server)
        sync = status.get("sync")
        return status.get("tags") == digests and isinstance(sync, dict) and int(sync.get("runs", 0)) >= runs

    _until(lambda: synced(4))
    browser.get(f"{server.base}/_specman")
    assert browser.path == "/_specman/"
    assert browser.text("#source") == f"{registry.host}/{REPO}"
    assert browser.text("#sync-state") == "In sync"
    rows = {
        cells[0].text: [c.text for c in cells]
        for cells in (row.find_elements("css selector", "td") for row in browser.finds("#tags tbody tr"))
    }
    assert set(rows) == set(TAGS)
    for tag, cells in rows.items():
        digest = browser.find(f"#tags a[href='/_specman/versions/{tag}/']").find_element("xpath", "../..")
        assert digest.find_element("css selector", "code").get_attribute("title") == digests[tag]
        assert cells[2].endswith(("KiB", "MiB"))
        assert int(cells[3]) > 0
        assert cells[4].endswith("UTC")
    bars = browser.finds("svg.chart rect.bar")
    assert len(bars) >= 8  # two panels, four syncs or more
    assert not browser.finds("svg.chart rect.failed")
    browser.shot("serve-status")

    # into one version's tree
    browser.find("#tags a[href='/_specman/versions/0.0.0/']").click()
    browser.until(lambda d: browser.path == "/_specman/versions/0.0.0/")
    assert "cloud-types" in browser.text("body") or "aws" in browser.text("body")

    # the registry goes away: the syncs fail, the page shows it, the tags stay
    registry.stop()
    _until(lambda: isinstance(s := _status(server).get("sync"), dict) and s.get("state") == "failing")
    browser.get(f"{server.base}/_specman/")
    assert browser.text("#sync-state") == "Sync failing"
    assert browser.text("#last-error")
    assert browser.finds("svg.chart rect.failed")
    assert len(browser.finds("#tags tbody tr")) == len(TAGS)
    browser.shot("serve-status-failing")
    assert browser.errors() == []
    assert browser.driver.execute_script("return document.scripts.length") == 0


def test_status_page_headers_and_escaping(serve_factory: Callable[..., ServeProcess], tmp_path: Path) -> None:
    """No browser needed: the page's CSP and the escaping of what the service does not control (the source)."""
    layout = tmp_path / "<b>layout</b>"
    push_layout(EXAMPLES / "cloud-types", layout)
    server = serve_factory([str(layout), "--oci-layout"], tmp_path / "data", tls=False, extra_args=["--interval", "1h"])
    with httpx.Client(base_url=server.base, trust_env=False, timeout=10) as client:
        page = client.get("/_specman/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "<b>layout</b>" not in page.text
        assert "&lt;b&gt;layout&lt;/b&gt;" in page.text
        assert client.get("/_specman/static/specman.css").status_code == 200
        assert client.get("/_specman/status").headers["content-type"] == "application/json"
