"""``POST /v1/registries/oci/validate`` and ``/{uid}/validate`` against real docker-registry processes.

Plain HTTP, TLS + htpasswd (good and bad credentials, missing/wrong CA, insecureSkipVerify) and token auth; the
"Contains Spectro Manifests" check lists the tags of ``spectro-packs/spectro-manifests/manifest``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.fixtures.console import ConsoleProcess
from tests.fixtures.registry import Registry, free_port

REPO = "spectro-packs/spectro-manifests/manifest"
PAYLOAD = Path(__file__).resolve().parents[1] / "examples" / "manifests" / "cloud-types"


def _push(registry: Registry, tag: str = "0.0.0") -> None:
    options = RegistryOptions(
        username=registry.username,
        password=registry.password,
        plain_http=registry.scheme == "http",
        ca_file=str(registry.ca_file) if registry.ca_file else None,
    )
    repository = open_repository(parse_reference(f"{registry.host}/{REPO}:{tag}"), options)
    try:
        push_artifact(repository, PAYLOAD, tag)
    finally:
        repository.close()


def _validate(console: ConsoleProcess, token: str, **body: Any) -> dict[str, tuple[bool, str]]:
    with console.client(token) as c:
        r = c.post("/v1/registries/oci/validate", json=body)
    assert r.status_code == 200, r.text
    result = r.json()
    checks = {check["name"]: (check["ok"], check["message"]) for check in result["checks"]}
    assert result["ok"] == all(ok for ok, _ in checks.values())
    return checks


def _ok(checks: dict[str, tuple[bool, str]]) -> dict[str, bool]:
    return {name: ok for name, (ok, _) in checks.items()}


def test_plain_registry_repository_missing_then_present(
    console: ConsoleProcess, token: str, registry_factory: Callable[..., Registry]
) -> None:
    registry = registry_factory("plain")
    endpoint = f"http://{registry.host}"
    checks = _validate(console, token, endpoint=endpoint)
    assert _ok(checks) == {"endpoint": True, "reachable": True, "tls": True, "credentials": True}
    assert checks["tls"][1] == "plain HTTP: no TLS"
    checks = _validate(console, token, endpoint=endpoint, containsSpectroManifests=True)
    assert checks["repository"] == (False, f"repository {REPO} not found")
    _push(registry, "4.5.13")
    _push(registry, "0.0.0")
    checks = _validate(console, token, endpoint=endpoint, containsSpectroManifests=True)
    assert checks["repository"] == (True, f"repository {REPO} has 2 tag(s): 0.0.0, 4.5.13")


def test_htpasswd_registry(console: ConsoleProcess, token: str, tls_registry: Registry, wrong_ca: Path) -> None:
    _push(tls_registry)
    ca = tls_registry.ca_file.read_text() if tls_registry.ca_file else ""
    good = {
        "endpoint": f"https://{tls_registry.host}",
        "username": tls_registry.username,
        "password": tls_registry.password,
        "caCert": ca,
        "containsSpectroManifests": True,
    }
    checks = _validate(console, token, **good)
    assert all(_ok(checks).values()), checks
    assert checks["tls"] == (True, "certificate verified")

    checks = _validate(console, token, **{**good, "password": "wrong-password"})
    assert _ok(checks) == {"endpoint": True, "reachable": True, "tls": True, "credentials": False, "repository": False}
    assert "unauthorized" in checks["credentials"][1]
    assert checks["repository"][1].startswith("not checked")

    checks = _validate(console, token, **{**good, "caCert": ""})
    assert _ok(checks)["tls"] is False
    assert "certificate verification failed" in checks["tls"][1]
    assert _ok(checks)["reachable"] is True
    checks = _validate(console, token, **{**good, "caCert": wrong_ca.read_text()})
    assert (_ok(checks)["tls"], _ok(checks)["credentials"]) == (False, False)

    checks = _validate(console, token, **{**good, "caCert": "", "insecureSkipVerify": True})
    assert all(_ok(checks).values()), checks
    assert "insecureSkipVerify" in checks["tls"][1]

    checks = _validate(console, token, **{**good, "endpoint": f"http://{tls_registry.host}"})
    assert _ok(checks)["reachable"] is False or _ok(checks)["credentials"] is False


def test_token_registry(console: ConsoleProcess, token: str, token_registry: Registry) -> None:
    _push(token_registry)
    ca = token_registry.ca_file.read_text() if token_registry.ca_file else ""
    good = {
        "endpoint": token_registry.host,
        "username": token_registry.username,
        "password": token_registry.password,
        "caCert": ca,
        "containsSpectroManifests": True,
    }
    checks = _validate(console, token, **good)
    assert all(_ok(checks).values()), checks
    checks = _validate(console, token, **{**good, "password": "nope"})
    assert _ok(checks)["credentials"] is False
    assert _ok(checks)["repository"] is False


def test_unreachable_and_invalid(console: ConsoleProcess, token: str) -> None:
    checks = _validate(console, token, endpoint=f"http://127.0.0.1:{free_port()}")
    assert _ok(checks) == {"endpoint": True, "reachable": False, "tls": False, "credentials": False}
    assert "connection refused" in checks["reachable"][1]
    with console.client(token) as c:
        r = c.post("/v1/registries/oci/validate", json={"endpoint": "https://host/with/path"})
        assert r.status_code == 422
        assert r.json()["field"] == "endpoint"
        assert c.post("/v1/registries/oci/validate", json={"endpoint": "h", "caCert": "x"}).status_code == 422


def test_validate_stored_registry(console: ConsoleProcess, token: str, tls_registry: Registry) -> None:
    _push(tls_registry)
    body = {
        "name": "stored",
        "endpoint": f"https://{tls_registry.host}",
        "username": tls_registry.username,
        "password": tls_registry.password,
        "caCert": tls_registry.ca_file.read_text() if tls_registry.ca_file else "",
        "containsSpectroManifests": True,
    }
    with console.client(token) as c:
        uid = c.post("/v1/registries/oci", json=body).json()["uid"]
        try:
            r = c.post(f"/v1/registries/oci/{uid}/validate")
            assert r.status_code == 200
            assert r.json()["ok"] is True, r.json()
            c.put(f"/v1/registries/oci/{uid}", json={**body, "password": "changed"})
            checks = {x["name"]: x["ok"] for x in c.post(f"/v1/registries/oci/{uid}/validate").json()["checks"]}
            assert checks["credentials"] is False
            assert c.post("/v1/registries/oci/nope/validate").status_code == 404
        finally:
            c.delete(f"/v1/registries/oci/{uid}")
    assert tls_registry.password not in console.log()
    assert (tls_registry.password or "x").encode() not in (console.data_dir / "console.db").read_bytes()


def test_last_validation_and_stored_password(console: ConsoleProcess, token: str, tls_registry: Registry) -> None:
    """``/{uid}/validate`` keeps its result as ``lastValidation`` until the checked values change; the body
    validation with ``uid`` and no ``password`` uses the stored password (the edit form's "unchanged")."""
    _push(tls_registry)
    body = {
        "name": "kept",
        "endpoint": f"https://{tls_registry.host}",
        "username": tls_registry.username,
        "password": tls_registry.password,
        "caCert": tls_registry.ca_file.read_text() if tls_registry.ca_file else "",
    }
    with console.client(token) as c:
        created = c.post("/v1/registries/oci", json=body).json()
        uid = created["uid"]
        try:
            assert created["lastValidation"] is None
            assert c.post(f"/v1/registries/oci/{uid}/validate").json()["ok"] is True
            last = c.get(f"/v1/registries/oci/{uid}").json()["lastValidation"]
            assert last["ok"] is True
            assert last["validatedAt"].endswith("Z")
            assert [check["name"] for check in last["checks"]] == ["endpoint", "reachable", "tls", "credentials"]
            without_password = {k: v for k, v in body.items() if k != "password"}
            renamed = c.put(f"/v1/registries/oci/{uid}", json={**without_password, "name": "kept-renamed"}).json()
            assert renamed["lastValidation"] == last  # the checked values did not change
            listed = [r for r in c.get("/v1/registries/oci").json()["items"] if r["uid"] == uid]
            assert listed[0]["lastValidation"] == last

            form = {**without_password, "uid": uid, "containsSpectroManifests": True}
            result = c.post("/v1/registries/oci/validate", json=form).json()
            assert result["ok"] is True, result  # the stored password
            result = c.post("/v1/registries/oci/validate", json={**form, "password": "wrong"}).json()
            assert {x["name"]: x["ok"] for x in result["checks"]}["credentials"] is False
            assert c.post("/v1/registries/oci/validate", json={**form, "uid": "nope"}).status_code == 404

            moved = c.put(f"/v1/registries/oci/{uid}", json={**without_password, "insecureSkipVerify": True}).json()
            assert moved["lastValidation"] is None  # a validation of other values
        finally:
            c.delete(f"/v1/registries/oci/{uid}")
