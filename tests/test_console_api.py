"""``specman console`` as a real process: login, tokens, SCAR config, registries CRUD, bad input, persistence."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.console import ADMIN_PASSWORD, ConsoleProcess, clean_env, start_console

SCAR_PASSWORD = "Scar-Secret-pw-4711"
REGISTRY_PASSWORD = "Reg1stry-Secret-pw-0815"
PROTECTED = [
    ("GET", "/v1/system/config/scar"),
    ("PUT", "/v1/system/config/scar"),
    ("GET", "/v1/registries/oci"),
    ("POST", "/v1/registries/oci"),
    ("POST", "/v1/registries/oci/validate"),
    ("GET", "/v1/registries/oci/abc"),
    ("PUT", "/v1/registries/oci/abc"),
    ("DELETE", "/v1/registries/oci/abc"),
    ("POST", "/v1/registries/oci/abc/validate"),
    ("GET", "/v1/jobs/internal"),
    ("GET", "/v1/jobs/internal/syncCloudInstanceTypesData"),
    ("GET", "/v1/jobs/internal/syncCloudInstanceTypesData/run"),
    ("POST", "/v1/jobs/internal/syncCloudStorageTypesData/run"),
    ("GET", "/v1/clouds"),
    ("GET", "/v1/clouds/aws/instanceTypes"),
    ("GET", "/v1/clouds/aws/storageTypes"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/system/specman/source"),
]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    work = tmp_path_factory.mktemp("console")
    token_file = work / "service-token"
    token_file.write_text("service-token-for-tests\n")
    server = start_console(work / "data", "--service-token-file", str(token_file))
    try:
        yield server
    finally:
        server.stop()


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"code", "message"}, body
    assert "Traceback" not in r.text
    if code:
        assert body["code"] == code, body
    return dict(body)


def test_login_cookie_and_header_forms(console: ConsoleProcess) -> None:
    with console.client() as c:
        r = c.post("/v1/auth/syslogin?setCookie=true", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["Authorization"]
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"Authorization={token};")
        for attr in ("HttpOnly", "SameSite=strict", "Secure", "Path=/"):
            assert attr.lower() in cookie.lower()
        plain = c.post("/v1/auth/syslogin", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert "set-cookie" not in plain.headers
        c.cookies.clear()
        for headers in (
            {"Cookie": f"Authorization={token}"},
            {"Cookie": f'Authorization="{token}"'},  # jq without -r, as the documentation's script sends it
            {"Cookie": f"other=1; Authorization={token}; x=y"},
            {"Authorization": f"Bearer {token}"},
            {"Authorization": token},
        ):
            assert c.get("/v1/registries/oci", headers=headers).status_code == 200, headers
        for headers in (
            {},
            {"Cookie": "Authorization=nope"},
            {"Authorization": "Bearer nope"},
            {"Authorization": f"Basic {token}"},
        ):
            _error(c.get("/v1/registries/oci", headers=headers), 401, "Unauthorized")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_needs_a_token(console: ConsoleProcess, method: str, path: str) -> None:
    with console.client() as c:
        _error(c.request(method, path, json={}), 401, "Unauthorized")


def test_public_endpoints(console: ConsoleProcess) -> None:
    with console.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        doc = c.get("/openapi.json").json()
        assert doc["openapi"].startswith("3.")
        assert "/v1/auth/syslogin" in doc["paths"]


def test_logout_revokes_the_token(console: ConsoleProcess) -> None:
    token = console.login()
    with console.client(token) as c:
        assert c.get("/v1/registries/oci").status_code == 200
        r = c.post("/v1/auth/logout")
        assert r.status_code == 204
        _error(c.get("/v1/registries/oci"), 401)


def test_wrong_password_then_lockout(console: ConsoleProcess) -> None:
    with console.client() as c:
        body = {"username": "locked-user", "password": "wrong"}
        for _ in range(4):
            _error(c.post("/v1/auth/syslogin", json=body), 401, "Unauthorized")
        r = c.post("/v1/auth/syslogin", json=body)  # the 5th failure locks the pair out
        _error(r, 429, "TooManyRequests")
        assert int(r.headers["Retry-After"]) >= 1
        _error(c.post("/v1/auth/syslogin", json=body), 429)
    assert console.login()  # another username is not locked


def test_scar_config(console: ConsoleProcess, token: str) -> None:
    with console.client(token) as c:
        body = {"endpoint": "https://scar.example.com:8443/", "username": "scar", "password": SCAR_PASSWORD}
        assert c.put("/v1/system/config/scar", json=body).status_code == 204
        got = c.get("/v1/system/config/scar").json()
        assert got["endpoint"] == "https://scar.example.com:8443"
        assert got["username"] == "scar"
        assert got["passwordSet"] is True
        assert "password" not in got
        assert SCAR_PASSWORD not in json.dumps(got)
        for bad, field in (
            ({"username": "x"}, "endpoint"),
            ({"endpoint": 5}, "endpoint"),
            ({"endpoint": "ftp://x"}, "endpoint"),
            ({"endpoint": "https://u:p@x"}, "endpoint"),
            ({"endpoint": "https://x", "password": ["a"]}, "password"),
            ({"endpoint": "https://x", "insecureSkipVerify": "yes"}, "insecureSkipVerify"),
            ({"endpoint": "https://x", "caCert": "not a pem"}, "caCert"),
        ):
            assert _error(c.put("/v1/system/config/scar", json=bad), 422, "ValidationFailed")["field"] == field
        assert c.get("/v1/system/config/scar").json()["endpoint"] == "https://scar.example.com:8443"


def test_bad_bodies(console: ConsoleProcess, token: str) -> None:
    with console.client(token) as c:
        _error(c.put("/v1/system/config/scar", content=b"{not json"), 400, "InvalidJson")
        _error(c.put("/v1/system/config/scar", content=b"\xff\xfe"), 400, "InvalidJson")
        _error(c.put("/v1/system/config/scar", content=b""), 400, "InvalidJson")
        _error(c.put("/v1/system/config/scar", json=["endpoint"]), 422)
        _error(c.put("/v1/system/config/scar", content=b"[" * 100_000 + b"]" * 100_000), 400)
        big = b'{"endpoint": "' + b"a" * (1 << 20) + b'"}'
        _error(c.put("/v1/system/config/scar", content=big), 413, "PayloadTooLarge")
        _error(c.post("/v1/registries/oci", content=iter([b"{", b" " * (1 << 20), b"}"])), 413)  # chunked
        _error(c.get("/v1/jobs/internal/noSuchJob"), 404, "NotFound")
        _error(c.post("/v1/jobs/internal/noSuchJob/run"), 404, "NotFound")
        _error(c.get("/v1/nothing-here"), 404, "NotFound")
        _error(c.delete("/v1/system/config/scar"), 405, "MethodNotAllowed")
        _error(c.post("/v1/auth/syslogin", json={"username": 1, "password": "x"}), 422)
        _error(c.post("/v1/auth/syslogin", json={"username": "admin"}), 422)


def test_registries_crud_and_spectro_conflict(console: ConsoleProcess, token: str) -> None:
    with console.client(token) as c:
        body = {
            "name": "harbor",
            "endpoint": "https://harbor.example.com",
            "username": "robot",
            "password": REGISTRY_PASSWORD,
            "containsSpectroManifests": True,
        }
        r = c.post("/v1/registries/oci", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        uid = created["uid"]
        assert r.headers["location"] == f"/v1/registries/oci/{uid}"
        assert created["passwordSet"] is True
        assert "password" not in created
        assert c.get(f"/v1/registries/oci/{uid}").json() == created
        assert [x["uid"] for x in c.get("/v1/registries/oci").json()["items"]] == [uid]

        other = {"name": "second", "endpoint": "registry.example.com:5000", "containsSpectroManifests": True}
        conflict = _error(c.post("/v1/registries/oci", json=other), 409, "Conflict")
        assert conflict["field"] == "containsSpectroManifests"
        _error(c.post("/v1/registries/oci", json={**body, "containsSpectroManifests": False}), 409)  # same name
        second = c.post("/v1/registries/oci", json={**other, "containsSpectroManifests": False}).json()

        update = {"name": "harbor", "endpoint": "harbor.example.com:443", "username": "robot2"}
        updated = c.put(f"/v1/registries/oci/{uid}", json=update).json()
        assert updated["passwordSet"] is True  # omitted password: kept
        assert updated["containsSpectroManifests"] is False
        assert updated["createdAt"] == created["createdAt"]
        moved = c.put(f"/v1/registries/oci/{second['uid']}", json={**other, "password": ""}).json()
        assert moved["containsSpectroManifests"] is True
        assert moved["passwordSet"] is False

        _error(c.put("/v1/registries/oci/unknown", json=update), 404)
        _error(c.post("/v1/registries/oci", json={"name": "x", "endpoint": "https://h/path"}), 422)
        _error(c.post("/v1/registries/oci", json={"name": "", "endpoint": "h"}), 422)
        _error(c.post("/v1/registries/oci", json={"endpoint": "h"}), 422)
        assert c.delete(f"/v1/registries/oci/{uid}").status_code == 204
        _error(c.get(f"/v1/registries/oci/{uid}"), 404)
        _error(c.delete(f"/v1/registries/oci/{uid}"), 404)
        assert c.delete(f"/v1/registries/oci/{second['uid']}").status_code == 204


def test_sql_and_header_injection_change_nothing(console: ConsoleProcess, token: str) -> None:
    with console.client(token) as c:
        before = c.get("/v1/registries/oci").json()
        for uid in ("' OR '1'='1", "x'; DROP TABLE registries; --", "%27%20OR%201=1"):
            _error(c.get(f"/v1/registries/oci/{uid}"), 404)
            _error(c.delete(f"/v1/registries/oci/{uid}"), 404)
        _error(c.get("/v1/clouds/aws' OR '1'='1/instanceTypes"), 404)
        name = "x'); DELETE FROM registries; --"
        r = c.post("/v1/registries/oci", json={"name": name, "endpoint": "h.example.com"})
        assert r.status_code == 201
        assert c.get(f"/v1/registries/oci/{r.json()['uid']}").json()["name"] == name
        c.delete(f"/v1/registries/oci/{r.json()['uid']}")
        _error(c.post("/v1/registries/oci", json={"name": "a\r\nSet-Cookie: x=y", "endpoint": "h"}), 422)
        _error(c.post("/v1/auth/syslogin", json={"username": "admin' --", "password": "x"}), 401)
        assert c.get("/v1/registries/oci").json() == before


def test_specman_source_needs_the_service_token(console: ConsoleProcess, token: str) -> None:
    with console.client(token) as c:
        _error(c.get("/v1/system/specman/source"), 401)
    with console.client("service-token-for-tests") as c:
        _error(c.get("/v1/system/specman/source"), 404)  # nothing marked yet
        _error(c.get("/v1/registries/oci"), 401)  # the service token opens nothing else
    with console.client(token) as c:
        body = {
            "name": "spectro",
            "endpoint": "http://127.0.0.1:5999",
            "username": "u",
            "password": REGISTRY_PASSWORD,
            "containsSpectroManifests": True,
        }
        uid = c.post("/v1/registries/oci", json=body).json()["uid"]
    try:
        with console.client("service-token-for-tests") as c:
            got = c.get("/v1/system/specman/source").json()
        assert got["registry"] == "127.0.0.1:5999"
        assert got["plainHttp"] is True
        assert got["repository"] == "spectro-packs/spectro-manifests/manifest"
        assert (got["username"], got["password"]) == ("u", REGISTRY_PASSWORD)
    finally:
        with console.client(token) as c:
            c.delete(f"/v1/registries/oci/{uid}")


def test_restart_keeps_everything_and_secrets_stay_secret(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data", admin_password=None, tls=False)
    try:
        pw_file = tmp_path / "data" / "admin-password"
        assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
        generated = pw_file.read_text().strip()
        token = console.login(generated)
        with console.client(token) as c:
            scar = {"endpoint": "http://scar.example.com", "username": "s", "password": SCAR_PASSWORD}
            assert c.put("/v1/system/config/scar", json=scar).status_code == 204
            reg = {"name": "r", "endpoint": "r.example.com", "username": "u", "password": REGISTRY_PASSWORD}
            uid = c.post("/v1/registries/oci", json=reg).json()["uid"]
        console.restart()
        with console.client(token) as c:  # tokens, config and registries survive a restart
            assert c.get("/v1/system/config/scar").json()["endpoint"] == "http://scar.example.com"
            assert c.get(f"/v1/registries/oci/{uid}").json()["passwordSet"] is True
        assert pw_file.read_text().strip() == generated  # generated once
    finally:
        console.stop()
    log = console.log()
    assert str(pw_file) in log
    key = (tmp_path / "data" / "secret.key").read_bytes()
    assert stat.S_IMODE((tmp_path / "data" / "secret.key").stat().st_mode) == 0o600
    for secret in (generated, SCAR_PASSWORD, REGISTRY_PASSWORD, token):
        assert secret not in log
        for name in os.listdir(tmp_path / "data"):
            path = tmp_path / "data" / name
            if name.startswith("console.db") and path.is_file():
                assert secret.encode() not in path.read_bytes(), name
    assert key.strip() not in (tmp_path / "data" / "console.db").read_bytes()


def test_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "specman", "console", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )

    assert run("--help").returncode == 0
    assert run("--data-dir", str(tmp_path), "--listen", "nope").returncode == 2
    empty = tmp_path / "empty"
    empty.write_text("")
    assert run("--data-dir", str(tmp_path), "--admin-password-file", str(empty)).returncode == 2
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("short\n")
    r = run("--data-dir", str(tmp_path / "d"), "--secret-key-file", str(bad_key))
    assert r.returncode == 2, r.stderr
    assert "base64" in r.stderr


def test_scar_password_omitted_is_kept(console: ConsoleProcess, token: str) -> None:
    """The SCAR page leaves the password out when unchanged; an explicit "" (the docs' script) clears it."""
    with console.client(token) as c:
        body = {"endpoint": "https://scar.example.com", "username": "scar", "password": SCAR_PASSWORD}
        assert c.put("/v1/system/config/scar", json=body).status_code == 204
        kept = {"endpoint": "https://scar.example.com", "username": "scar"}
        assert c.put("/v1/system/config/scar", json=kept).status_code == 204
        assert c.get("/v1/system/config/scar").json()["passwordSet"] is True
        assert c.put("/v1/system/config/scar", json={**body, "password": ""}).status_code == 204
        assert c.get("/v1/system/config/scar").json()["passwordSet"] is False
        assert c.put("/v1/system/config/scar", json=body).status_code == 204
        assert c.put("/v1/system/config/scar", json={"endpoint": "https://scar.example.com"}).status_code == 204
        assert c.get("/v1/system/config/scar").json()["passwordSet"] is False  # no username: no password
