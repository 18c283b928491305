"""The console's web pages in a real headless Chromium against a real ``specman console`` and ``docker-registry``.

The product documentation's flow end to end (Pack Registries → three-dot menu → Edit → Contains Spectro Manifests →
Validate → Confirm), with a wrong password first; login, logout and an expired session; the SCAR page and a job run
from the Jobs page against a real ``specman serve`` as the SCAR endpoint; a hostile registry name shown as text; a
cross-origin page of the same site trying to change state with the session cookie (403); and every password typed
never coming back in a page, an API answer or the console's log.  Each test is self-contained (``pytest -n 2``
may run them on different workers) and saves screenshots into the ``screenshots`` directory.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.keys import Keys

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.fixtures.browser import Browser
from tests.fixtures.certs import Certs
from tests.fixtures.console import ADMIN_PASSWORD, EXAMPLES, ConsoleProcess, ScarServer, start_scar
from tests.fixtures.registry import Registry, start_registry, stop_registry

REPO = "spectro-packs/spectro-manifests/manifest"
REGISTRY_USER = "packs"
REGISTRY_PASSWORD = "Registry-Pa55-typed-once"
WRONG_PASSWORD = "Wrong-Pa55-typed-once"
SCAR_PASSWORD = "Scar-Pa55-typed-once"
TYPED = (REGISTRY_PASSWORD, WRONG_PASSWORD, SCAR_PASSWORD, ADMIN_PASSWORD)
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """TLS (test CA) + htpasswd, holding two tags of the Spectro manifests repository."""
    started = start_registry(
        tmp_path_factory.mktemp("ui-registry"), "htpasswd", certs, users={REGISTRY_USER: REGISTRY_PASSWORD}
    )
    try:
        options = RegistryOptions(
            username=REGISTRY_USER, password=REGISTRY_PASSWORD, ca_file=str(started.ca_file), plain_http=False
        )
        for tag in ("0.0.0", "4.5.13"):
            repository = open_repository(parse_reference(f"{started.host}/{REPO}:{tag}"), options)
            try:
                push_artifact(repository, EXAMPLES / "cloud-types", tag)
            finally:
                repository.close()
        yield started
    finally:
        stop_registry(started)


def _login(browser: Browser, console: ConsoleProcess, page: str = "/registries") -> None:
    browser.driver.delete_all_cookies()
    browser.get(f"{console.base}{page}")
    browser.until(lambda d: browser.path.startswith("/login"), message="not sent to the login page")
    browser.find("#password").send_keys(ADMIN_PASSWORD, Keys.ENTER)
    browser.until(lambda d: browser.path == page, message=f"not back on {page} after logging in")
    browser.wait_ready()


def _api(console: ConsoleProcess, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    with console.client(token) as client:
        return client.request(method, path, **kw)


def _assert_never_shown(browser: Browser, console: ConsoleProcess, token: str, secrets: tuple[str, ...]) -> None:
    """None of ``secrets`` is in any page the browser saw, the API's answers, the browser's or the console's log."""
    answers = [_api(console, token, "GET", path).text for path in ("/v1/registries/oci", "/v1/system/config/scar")]
    answers += [
        _api(console, token, "GET", f"/v1/registries/oci/{item['uid']}").text
        for item in _api(console, token, "GET", "/v1/registries/oci").json()["items"]
    ]
    seen = {
        "pages": "\n".join([*browser.pages, browser.source()]),
        "api": "\n".join(answers),
        "browser log": json.dumps(browser.logs()),
        "console log": console.log(),
        "database": (console.data_dir / "console.db").read_bytes().decode("latin-1"),
    }
    for secret in secrets:
        for where, text in seen.items():
            assert secret not in text, f"a typed password shows up in the {where}"


def _checks(browser: Browser) -> dict[str, str]:
    """The dialog's validation results: check name -> ok / fail / skip."""
    return {
        str(li.get_attribute("data-check")): str(li.get_attribute("class")) for li in browser.finds("#validation li")
    }


def _validate(browser: Browser) -> dict[str, str]:
    browser.find("#validate").click()
    browser.until(lambda d: browser.find("#validate").get_attribute("aria-busy") is None and _checks(browser))
    browser.until(lambda d: not browser.find("#validation").get_attribute("hidden"))
    return _checks(browser)


def _row(browser: Browser, name: str) -> Any:
    return next(r for r in browser.finds("#registries tbody tr") if r.get_attribute("data-name") == name)


def test_login_logout_and_expired_session(browser: Browser, console: ConsoleProcess) -> None:
    with httpx.Client(base_url=console.base, trust_env=False) as client:
        assert client.get("/").headers["location"] == "/registries"
        for page in ("/registries", "/scar", "/jobs"):
            answer = client.get(page)
            assert answer.status_code == 303, page
            assert answer.headers["location"] == f"/login?next=%2F{page[1:]}"
        assert client.get("/v1/registries/oci").status_code == 401
    browser.driver.delete_all_cookies()
    browser.get(f"{console.base}/jobs")
    assert browser.path == "/login?next=%2Fjobs"
    assert browser.driver.switch_to.active_element.get_attribute("id") == "password"  # autofocus
    browser.find("#password").send_keys("not-the-password", Keys.ENTER)
    assert "Wrong username or password" in browser.visible("#login-error").text
    browser.find("#password").send_keys(ADMIN_PASSWORD, Keys.ENTER)
    browser.until(lambda d: browser.path == "/jobs")
    assert browser.find("nav a[aria-current=page]").text == "Jobs"
    # the session cookie: HttpOnly, SameSite=Strict, not readable by scripts
    cookie = browser.driver.get_cookie("Authorization")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert browser.driver.execute_script("return document.cookie") == ""
    # an expired (here: unknown) session token: back to the login page, which says so
    browser.driver.delete_all_cookies()
    browser.driver.add_cookie({"name": "Authorization", "value": "expired-token", "path": "/"})
    browser.get(f"{console.base}/registries")
    assert browser.path.startswith("/login")
    assert "session has expired" in browser.visible(".notice").text
    browser.shot("console-login-expired")
    # log in again, then log out from the top bar: the token is revoked
    browser.find("#password").send_keys(ADMIN_PASSWORD, Keys.ENTER)
    browser.until(lambda d: browser.path == "/registries")
    token = browser.driver.get_cookie("Authorization")["value"]
    browser.find("#logout").click()
    browser.until(lambda d: browser.path.startswith("/login"))
    assert "logged out" in browser.visible(".notice").text
    assert _api(console, token, "GET", "/v1/registries/oci").status_code == 401
    assert browser.errors() == []


def test_pack_registry_validate_confirm(
    browser: Browser, console: ConsoleProcess, token: str, registry: Registry, certs: Certs
) -> None:
    _login(browser, console)
    # Add registry with a wrong password: the credentials check fails and Confirm stays disabled
    browser.find("#add-registry").click()
    browser.visible("#registry-dialog")
    assert browser.driver.switch_to.active_element.get_attribute("id") == "f-name"
    browser.find("#f-name").send_keys("Packs (OCI)")
    browser.find("#f-endpoint").send_keys(registry.url)
    browser.find("#f-username").send_keys(REGISTRY_USER)
    browser.find("#f-password").send_keys(WRONG_PASSWORD)
    browser.find("#f-ca-file").send_keys(str(certs.ca_cert))  # the CA certificate from a file
    browser.until(lambda d: "BEGIN CERTIFICATE" in browser.find("#f-ca").get_attribute("value"))
    checks = _validate(browser)
    assert checks["reachable"] == "ok"
    assert checks["tls"] == "ok"
    assert checks["credentials"] == "fail"
    assert browser.find("#confirm").get_attribute("disabled") is not None
    browser.shot("console-registry-wrong-password", min_height=1000)
    # the right password: every check passes and Confirm is enabled for exactly these values
    password = browser.find("#f-password")
    password.clear()
    password.send_keys(REGISTRY_PASSWORD)
    assert browser.find("#confirm").get_attribute("disabled") is not None
    checks = _validate(browser)
    assert set(checks.values()) == {"ok"}, checks
    assert browser.find("#confirm").is_enabled()
    browser.find("#f-insecure").click()  # another value: validate again first
    assert not browser.find("#confirm").is_enabled()
    assert browser.find("#validation-stale").is_displayed()
    browser.find("#f-insecure").click()
    assert browser.find("#confirm").is_enabled()
    browser.find("#confirm").click()
    browser.until(lambda d: browser.finds("#registries tbody tr"), message="the registry was not added")
    row = _row(browser, "Packs (OCI)")
    assert "Passed" in row.find_element("css selector", ".validation").text
    assert not row.find_elements("css selector", ".badge.spectro")

    # the documentation's steps: three-dot menu (keyboard) -> Edit -> Contains Spectro Manifests -> Validate -> Confirm
    menu = row.find_element("css selector", ".menu-button")
    assert menu.get_attribute("aria-label") == "Actions for Packs (OCI)"
    menu.send_keys(Keys.ENTER)
    browser.until(lambda d: browser.driver.switch_to.active_element.text == "Edit")
    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    browser.visible("#registry-dialog")
    assert browser.find("#f-endpoint").get_attribute("value") == registry.url
    assert browser.find("#f-password").get_attribute("value") == ""  # write-only: never shown back
    assert "unchanged" in browser.find("#f-password").get_attribute("placeholder")
    browser.find("#f-spectro").click()
    assert not browser.find("#confirm").is_enabled()
    checks = _validate(browser)  # with the stored password
    assert checks == dict.fromkeys(("endpoint", "reachable", "tls", "credentials", "repository"), "ok")
    repository = browser.find("#validation li[data-check=repository] .msg").text
    assert repository == f"repository {REPO} has 2 tag(s): 0.0.0, 4.5.13"
    assert browser.find("#confirm").is_enabled()
    browser.shot("console-registry-validated", min_height=1000)
    browser.find("#confirm").click()
    browser.until(lambda d: browser.finds("#registries .badge.spectro"), message="no Contains Spectro Manifests badge")
    browser.shot("console-registries")
    # the API says the same
    items = _api(console, token, "GET", "/v1/registries/oci").json()["items"]
    stored = next(item for item in items if item["name"] == "Packs (OCI)")
    assert stored["containsSpectroManifests"] is True
    assert stored["passwordSet"] is True
    assert stored["lastValidation"]["ok"] is True
    assert [c["name"] for c in stored["lastValidation"]["checks"]][-1] == "repository"
    spectro = [item for item in items if item["containsSpectroManifests"]]
    assert [item["uid"] for item in spectro] == [stored["uid"]]
    _assert_never_shown(browser, console, token, TYPED)
    assert browser.errors() == []


def test_hostile_name_is_text_and_row_actions(browser: Browser, console: ConsoleProcess, token: str) -> None:
    body = {"name": HOSTILE, "endpoint": "http://127.0.0.1:9", "username": "x", "password": WRONG_PASSWORD}
    created = _api(console, token, "POST", "/v1/registries/oci", json=body)
    assert created.status_code == 201, created.text
    _login(browser, console)
    row = _row(browser, HOSTILE)
    assert row.find_element("css selector", "td.name").text == HOSTILE
    assert browser.no_alert()
    assert browser.driver.execute_script("return document.scripts.length") == 1  # console.js only
    # Validate from the row menu: the result is kept and shown (nothing listens on port 9)
    row.find_element("css selector", ".menu-button").click()
    row.find_element("css selector", "[data-action=validate]").click()
    browser.until(lambda d: "Failed" in _row(browser, HOSTILE).find_element("css selector", ".validation").text)
    assert "Reachable: cannot connect" in _row(browser, HOSTILE).find_element("css selector", ".failure").text
    browser.shot("console-hostile-name")
    # Delete from the row menu, through the confirmation dialog
    row = _row(browser, HOSTILE)
    row.find_element("css selector", ".menu-button").click()
    row.find_element("css selector", "[data-action=delete]").click()
    assert browser.visible("#delete-name").text == HOSTILE
    browser.find("#delete-confirm").click()
    browser.until(
        lambda d: not [r for r in browser.finds("#registries tbody tr") if r.get_attribute("data-name") == HOSTILE]
    )
    assert _api(console, token, "GET", f"/v1/registries/oci/{created.json()['uid']}").status_code == 404
    _assert_never_shown(browser, console, token, TYPED)
    assert browser.errors() == []


class _Attacker(BaseHTTPRequestHandler):
    """A page of another origin on the same site (127.0.0.1, another port) posting to the console."""

    target = ""

    def do_GET(self) -> None:
        script = f"""
          const c = {json.dumps(self.target)};
          const body = JSON.stringify({{name: "csrf", endpoint: "http://127.0.0.1:9"}});
          Promise.allSettled([
            fetch(c + "/v1/registries/oci", {{method: "POST", body, credentials: "include", mode: "no-cors",
              headers: {{"Content-Type": "text/plain"}}}}),
            fetch(c + "/v1/jobs/internal/syncCloudInstanceTypesData/run",
              {{method: "POST", credentials: "include", mode: "no-cors"}}),
          ]).then(() => {{ document.title = "done"; }});
        """
        page = f"<!doctype html><title>attacker</title><script>{script}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


def test_cross_origin_state_changes_are_refused(browser: Browser, console: ConsoleProcess, token: str) -> None:
    # the API itself: a foreign Origin is refused, the console's own and none (curl, the docs' script) are not
    run = "/v1/jobs/internal/syncCloudStorageTypesData/run"
    for method, path in (
        ("POST", "/v1/registries/oci"),
        ("POST", run),
        ("GET", run),
        ("PUT", "/v1/system/config/scar"),
    ):
        answer = _api(console, token, method, path, json={}, headers={"Origin": "http://evil.example"})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["code"] == "CrossOriginRequest"
    assert _api(console, token, "GET", run, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _api(console, token, "GET", "/v1/registries/oci", headers={"Origin": "http://evil.example"}).is_success
    own = console.base.split("://", 1)[1]
    assert _api(console, token, "GET", run, headers={"Origin": f"http://{own}"}).status_code == 204
    # a real page of another origin, with the victim logged in (same site: the cookie is sent along)
    _login(browser, console)
    before = _api(console, token, "GET", "/v1/jobs/internal/syncCloudInstanceTypesData").json()["runs"]
    _Attacker.target = console.base
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        browser.until(lambda d: d.title == "done")
    finally:
        server.shutdown()
        server.server_close()
    names = [item["name"] for item in _api(console, token, "GET", "/v1/registries/oci").json()["items"]]
    assert "csrf" not in names
    assert _api(console, token, "GET", "/v1/jobs/internal/syncCloudInstanceTypesData").json()["runs"] == before


@pytest.fixture(scope="module")
def scar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScarServer]:
    server = start_scar(tmp_path_factory.mktemp("ui-scar"))
    try:
        yield server
    finally:
        server.stop()


def test_scar_page_and_jobs_page(browser: Browser, console: ConsoleProcess, token: str, scar: ScarServer) -> None:
    _login(browser, console, "/scar")
    assert "Not configured" in browser.text("main")
    endpoint = browser.find("#s-endpoint")
    endpoint.clear()
    endpoint.send_keys(scar.url)
    browser.find("#s-username").send_keys("scar-reader")
    browser.find("#s-password").send_keys(SCAR_PASSWORD)
    browser.find("#s-ca-file").send_keys(str(scar.ca))
    browser.until(lambda d: "BEGIN CERTIFICATE" in browser.find("#s-ca").get_attribute("value"))
    browser.find("#scar-form button[type=submit]").click()
    browser.until(lambda d: browser.path == "/scar?saved=1")
    assert browser.text("#scar-endpoint") == scar.url
    assert browser.text("#scar-username") == "scar-reader"
    assert browser.find("#s-password").get_attribute("value") == ""
    browser.shot("console-scar")
    got = _api(console, token, "GET", "/v1/system/config/scar").json()
    assert (got["endpoint"], got["username"], got["passwordSet"]) == (scar.url, "scar-reader", True)

    # Jobs: run one and watch it succeed (the page follows the run through the API)
    browser.find("nav a[href='/jobs']").click()
    browser.until(lambda d: browser.path == "/jobs")
    job = "syncCloudInstanceTypesData"
    browser.find(f"button.run[data-job={job}]").click()
    started = time.monotonic()
    browser.until(
        lambda d: [r for r in browser.finds(f"#job-{job} .run-row") if r.get_attribute("data-state") == "succeeded"],
        timeout=60,
        message="the run did not succeed",
    )
    first = browser.finds(f"#job-{job} .run-row")[0]
    cells = [c.text for c in first.find_elements("css selector", "td")]
    assert cells[1] == "succeeded"
    assert int(cells[4]) > 0  # items ingested
    assert cells[5] == ""
    assert time.monotonic() - started < 60
    browser.shot("console-jobs")
    runs = _api(console, token, "GET", f"/v1/jobs/internal/{job}").json()["runs"]
    assert runs[0]["state"] == "succeeded"
    _assert_never_shown(browser, console, token, TYPED)
    assert browser.errors() == []
