"""The console's "Contains Spectro Manifests" registry carries a signature policy: stored, validated ("signatures"
check), handed to ``specman serve --console``, which follows it without a restart.  Real console, registry, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.signature.cosign import sign_legacy
from specman.signature.keys import PrivateKey, generate_key
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.console import ConsoleProcess, start_console
from tests.fixtures.registry import Registry
from tests.fixtures.serve import poll
from tests.test_sync import push_tree

SERVICE_TOKEN = "svc-Token-for-signatures-7"


@pytest.fixture
def console(tmp_path: Path) -> ConsoleProcess:
    token_file = tmp_path / "service-token"
    token_file.write_text(SERVICE_TOKEN + "\n")
    server = start_console(tmp_path / "console", "--service-token-file", str(token_file))
    yield server  # type: ignore[misc]
    server.stop()


def _push(registry: Registry, tag: str, marker: str, work: Path, key: PrivateKey | None) -> str:
    assert registry.ca_file is not None
    options = RegistryOptions(username=registry.username, password=registry.password, ca_file=str(registry.ca_file))
    repo = open_repository(parse_reference(f"{registry.host}/{DEFAULT_REPOSITORY}"), options)
    try:
        digest = push_tree(repo, tag, {"where.txt": marker}, work)
        if key is not None:
            sign_legacy(repo, digest, repo.display, key)
        return digest
    finally:
        repo.close()


def _body(registry: Registry, **policy: Any) -> dict[str, Any]:
    assert registry.ca_file is not None
    return {
        "name": "spectro",
        "endpoint": registry.url,
        "username": registry.username,
        "password": registry.password,
        "caCert": registry.ca_file.read_text(),
        "containsSpectroManifests": True,
        **policy,
    }


def test_console_policy_is_validated_and_followed(
    console: ConsoleProcess, registry_factory: RegistryFactory, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    registry = registry_factory("htpasswd")
    key = generate_key()
    pem = key.public.pem().decode()
    signed = _push(registry, "4.5.13", "signed", tmp_path, key)
    admin = console.login()
    with console.client(admin) as c:
        bad = c.post("/v1/registries/oci", json=_body(registry, verify="required", verifyKeys=["not a key"]))
        assert bad.status_code == 422 and bad.json()["field"] == "verifyKeys"
        assert c.post("/v1/registries/oci", json=_body(registry, verify="required")).status_code == 422
        assert c.post("/v1/registries/oci", json=_body(registry, verify="sometimes")).json()["field"] == "verify"
        created = c.post("/v1/registries/oci", json=_body(registry, verify="required", verifyKeys=[pem]))
        assert created.status_code in (200, 201), created.text
        registry_json = created.json()
        uid = registry_json["uid"]
        assert registry_json["verify"] == "required"
        assert registry_json["verifyKeyFingerprints"] == [key.public.fingerprint]
        checks = {ch["name"]: ch for ch in c.post(f"/v1/registries/oci/{uid}/validate").json()["checks"]}
        assert checks["signatures"]["ok"], checks
        assert "1 version(s) signed" in checks["signatures"]["message"]

    (tmp_path / "token").write_text(SERVICE_TOKEN)
    args = ["--console", console.base, "--console-token-file", str(tmp_path / "token")]
    args += ["--console-ca-file", str(console.ca)]
    server = serve_factory(args, tmp_path / "data", extra_args=["--interval", "1s"])
    with server.client() as client:
        assert poll(lambda: client.get("/_specman/status").json()["tags"] == {"4.5.13": signed}), server.log_tail()
        status = client.get("/_specman/status").json()
        assert status["verify"]["mode"] == "required"
        assert status["signatures"]["4.5.13"]["verification"]["signer"] == key.public.fingerprint

        # an unsigned version: refused by the console's policy, the validation says so too
        _push(registry, "4.5.15", "unsigned", tmp_path, None)
        assert poll(lambda: "4.5.15" in client.get("/_specman/status").json()["sync"]["failed_tags"])
        assert client.get("/where.txt").text == "signed"
        with console.client(admin) as c:
            checks = {ch["name"]: ch for ch in c.post(f"/v1/registries/oci/{uid}/validate").json()["checks"]}
            assert not checks["signatures"]["ok"]
            assert "4.5.15 (no signature found" in checks["signatures"]["message"]
            # a PUT without the policy fields keeps the policy (as it keeps the password)
            kept = c.put(f"/v1/registries/oci/{uid}", json=_body(registry)).json()
            assert kept["verify"] == "required"
            # the operator turns the policy off: followed at the next sync, no restart
            off = c.put(f"/v1/registries/oci/{uid}", json=_body(registry, verify="off", verifyKeys=[])).json()
            assert off["verify"] == "off"
        assert poll(lambda: set(client.get("/_specman/status").json()["tags"]) == {"4.5.13", "4.5.15"})
        assert client.get("/_specman/status").json()["verify"] is None
    assert "Signature policy from the console" in server.log_text()
