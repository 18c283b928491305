"""Smoke tests proving the real-component fixtures work, using plain httpx (never specman)."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.fixtures.faultproxy import Fault, FaultProxy
from tests.fixtures.oci import OCI_MANIFEST, digest_of, parse_challenge, push_artifact, push_blob, registry_client
from tests.fixtures.registry import Registry
from tests.fixtures.tokenserver import REGISTRY_LEEWAY
from tests.fixtures.tools import Skopeo

from .conftest import RegistryFactory


def _client(registry: Registry, **kwargs: object) -> httpx.Client:
    return httpx.Client(verify=registry.verify, trust_env=False, timeout=30, **kwargs)  # type: ignore[arg-type]


def _token(registry: Registry, scope: str | None, user: str | None = "alice") -> str:
    ts = registry.token_server
    assert ts is not None
    params = {"service": ts.service} | ({"scope": scope} if scope else {})
    auth = (user, registry.users[user]) if user else None
    with _client(registry) as c:
        r = c.get(ts.realm, params=params, auth=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == ts.lifetime
    return str(body["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _upload(client: httpx.Client, registry: Registry, name: str, data: bytes, token: str) -> httpx.Response:
    r = client.post(f"{registry.url}/v2/{name}/blobs/uploads/", headers=_bearer(token))
    if r.status_code != 202:
        return r
    location = r.headers["Location"]
    return client.put(f"{location}&digest={digest_of(data)}", content=data, headers=_bearer(token))


def _stream(client: httpx.Client, url: str) -> tuple[int, bytes, httpx.TransportError | None]:
    """GET ``url`` streaming; return the status, the body bytes received and the error that ended it (if any)."""
    received = b""
    with client.stream("GET", url) as r:
        try:
            for chunk in r.iter_raw():
                received += chunk
        except httpx.TransportError as exc:
            return r.status_code, received, exc
    return r.status_code, received, None


def test_environment_is_isolated(docker_config: object) -> None:
    assert os.environ["DOCKER_CONFIG"] == str(docker_config)
    assert "SSL_CERT_FILE" not in os.environ
    assert "REQUESTS_CA_BUNDLE" not in os.environ


def test_plain_registry(plain_registry: Registry) -> None:
    assert plain_registry.url == f"http://{plain_registry.host}"
    assert plain_registry.ca_file is None
    assert plain_registry.auth is None
    assert httpx.get(f"{plain_registry.url}/v2/", trust_env=False).status_code == 200


def test_tls_registry_ca_and_htpasswd(tls_registry: Registry, wrong_ca: Path) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_file is not None
    assert tls_registry.username == "alice"
    with _client(tls_registry) as c:
        r = c.get(f"{tls_registry.url}/v2/")
        assert r.status_code == 401
        assert parse_challenge(r.headers["WWW-Authenticate"])[0] == "basic"
        assert c.get(f"{tls_registry.url}/v2/", auth=tls_registry.auth).status_code == 200
        assert c.get(f"{tls_registry.url}/v2/", auth=("alice", "wrong")).status_code == 401
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_registry.url}/v2/", verify=ssl.create_default_context(cafile=wrong_ca), trust_env=False)


def test_token_challenge_fetch_and_push(token_registry: Registry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.reset()
    with _client(token_registry) as c:
        r = c.get(f"{token_registry.url}/v2/")
        assert r.status_code == 401
        scheme, params = parse_challenge(r.headers["WWW-Authenticate"])
        assert scheme == "bearer"
        assert params == {"realm": ts.realm, "service": ts.service}
        token = _token(token_registry, "repository:smoke/push:pull,push")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["aud"] == ts.service
        assert claims["access"] == [{"type": "repository", "name": "smoke/push", "actions": ["pull", "push"]}]
        assert jwt.get_unverified_header(token)["kid"] == ts.kid
        assert c.get(f"{token_registry.url}/v2/", headers=_bearer(token)).status_code == 200
        data = os.urandom(1000)
        assert _upload(c, token_registry, "smoke/push", data, token).status_code == 201
        r = c.get(f"{token_registry.url}/v2/smoke/push/blobs/{digest_of(data)}", headers=_bearer(token))
        assert r.status_code == 200
        assert r.content == data
        # A token for another repository does not help.
        r = c.head(f"{token_registry.url}/v2/smoke/other/blobs/{digest_of(data)}", headers=_bearer(token))
        assert r.status_code == 401
    assert ts.count(grant_type="get", user="alice") == 1
    (req,) = ts.requests
    assert req.scopes == ("repository:smoke/push:pull,push",)
    assert req.granted == ("repository:smoke/push:pull,push",)


def test_pull_only_token_gets_insufficient_scope(token_registry: Registry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.reset()
    token = _token(token_registry, "repository:smoke/ro:pull,push", user="reader")
    assert ts.requests[-1].granted == ("repository:smoke/ro:pull",)
    with _client(token_registry) as c:
        r = _upload(c, token_registry, "smoke/ro", b"nope", token)
    assert r.status_code == 401
    scheme, params = parse_challenge(r.headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params["error"] == "insufficient_scope"
    # distribution lists the actions in random order (a Go map): "pull,push" or "push,pull".
    rtype, name, actions = params["scope"].split(":")
    assert (rtype, name, sorted(actions.split(","))) == ("repository", "smoke/ro", ["pull", "push"])
    # carol may push to team/* only; multiple scope parameters are intersected one by one.
    with _client(token_registry) as c:
        r = c.get(
            ts.realm,
            params=[("service", ts.service), ("scope", "repository:team/a:pull,push"), ("scope", "repository:x:pull")],
            auth=("carol", token_registry.users["carol"]),
        )
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "team/a", "actions": ["pull", "push"]}]


def test_oauth2_password_and_refresh_grants(token_registry: Registry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.reset()
    with _client(token_registry) as c:
        form = {
            "grant_type": "password",
            "username": "alice",
            "password": token_registry.users["alice"],
            "service": ts.service,
            "scope": "repository:smoke/a:pull repository:smoke/b:pull,push",
            "client_id": "specman-tests",
        }
        body = c.post(ts.realm, data=form).json()
        assert set(body) >= {"access_token", "refresh_token", "expires_in", "scope"}
        assert body["scope"] == "repository:smoke/a:pull repository:smoke/b:pull,push"
        refreshed = c.post(
            ts.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "service": ts.service,
                "scope": "repository:smoke/c:pull",
            },
        )
        assert refreshed.status_code == 200
        token = refreshed.json()["access_token"]
        assert c.get(f"{token_registry.url}/v2/smoke/c/tags/list", headers=_bearer(token)).status_code == 404
        assert c.post(ts.realm, data=form | {"password": "bad"}).status_code == 401
        assert c.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": "x"}).status_code == 401
        assert c.get(ts.realm, params={"service": ts.service}, auth=("alice", "bad")).status_code == 401
    assert ts.count(grant_type="password") == 1
    assert ts.count(grant_type="refresh_token") == 1
    assert ts.count(status=401) == 3
    assert [r.client_id for r in ts.requests][:1] == ["specman-tests"]


def test_anonymous_token_has_no_access(token_registry: Registry) -> None:
    token = _token(token_registry, "repository:smoke/push:pull", user=None)
    assert jwt.decode(token, options={"verify_signature": False})["access"] == []
    with _client(token_registry) as c:
        assert c.get(f"{token_registry.url}/v2/", headers=_bearer(token)).status_code == 200
        r = c.get(f"{token_registry.url}/v2/smoke/push/tags/list", headers=_bearer(token))
        assert r.status_code == 401
        ts = token_registry.token_server
        assert ts is not None
        ts.fail_next(1, status=503)
        assert c.get(ts.realm, params={"service": ts.service}).status_code == 503
        ts.anonymous = "deny"
        try:
            assert c.get(ts.realm, params={"service": ts.service}).status_code == 401
        finally:
            ts.anonymous = "token"
        assert c.get(ts.realm, params={"service": ts.service}).status_code == 200


def test_x5c_tokens_push_and_pull(token_registry_x5c: Registry) -> None:
    ts = token_registry_x5c.token_server
    assert ts is not None
    token = _token(token_registry_x5c, "repository:smoke/x5c:pull,push")
    header = jwt.get_unverified_header(token)
    assert "kid" not in header
    assert len(header["x5c"]) == 1
    with registry_client(token_registry_x5c) as c:
        pushed = push_artifact(c, "smoke/x5c", "v1", {"a.txt": b"x5c"})
        r = c.get("/v2/smoke/x5c/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.content == pushed.manifest
    assert r.headers["Docker-Content-Digest"] == pushed.digest
    with _client(token_registry_x5c) as c:
        url = f"{token_registry_x5c.url}/v2/smoke/x5c/manifests/{pushed.digest}"
        # distribution 2.8 answers 404 MANIFEST_UNKNOWN for an OCI manifest unless Accept allows it (even by digest).
        assert c.get(url, headers=_bearer(token)).status_code == 404
        r = c.get(url, headers=_bearer(token) | {"Accept": OCI_MANIFEST})
    assert r.status_code == 200


def test_token_expiry(registry_factory: RegistryFactory) -> None:
    registry = registry_factory("token", token_options={"lifetime": 2, "backdate": 30})
    ts = registry.token_server
    assert ts is not None
    url = f"{registry.url}/v2/"
    with _client(registry) as c:
        # exp is already 28 s in the past, but distribution allows 60 s of leeway.
        assert c.get(url, headers=_bearer(_token(registry, None))).status_code == 200
        ts.backdate = REGISTRY_LEEWAY
        token = _token(registry, None)
        assert c.get(url, headers=_bearer(token)).status_code == 200
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        time.sleep(max(0.0, exp + REGISTRY_LEEWAY + 1.1 - time.time()))
        r = c.get(url, headers=_bearer(token))
    assert r.status_code == 401
    assert "invalid_token" in r.headers["WWW-Authenticate"]


def test_restart_keeps_port_and_data(registry_factory: RegistryFactory) -> None:
    registry = registry_factory("plain")
    host = registry.host
    with registry_client(registry) as c:
        digest = push_blob(c, "smoke/restart", b"survives")
    registry.restart()
    assert registry.host == host
    with registry_client(registry) as c:
        assert c.get(f"/v2/smoke/restart/blobs/{digest}").content == b"survives"


def test_fault_proxy_cuts_response(plain_registry: Registry, fault_proxy: FaultProxy) -> None:
    data = os.urandom(256 * 1024)
    with registry_client(plain_registry) as c:
        digest = push_blob(c, "smoke/cut", data)
    blob = f"/v2/smoke/cut/blobs/{digest}"
    fault = fault_proxy.add_fault(Fault.cut(r"^GET /v2/.*/blobs/", after_bytes=1000, times=1))
    with httpx.Client(base_url=fault_proxy.url, trust_env=False, timeout=10) as c:
        assert c.get("/v2/").status_code == 200  # same keep-alive connection first
        assert c.head(blob).status_code == 200  # does not match the pattern
        with pytest.raises(httpx.TransportError):
            c.get(blob)
        r = c.get(blob)
        assert r.status_code == 200
        assert r.content == data
        # body_only: the head passes, then exactly N body bytes, then a reset.
        fault_proxy.add_fault(Fault.cut(r"^GET /v2/.*/blobs/", after_bytes=5000, body_only=True))
        status, received, error = _stream(c, blob)
        assert (status, received) == (200, data[:5000])
        assert isinstance(error, httpx.ReadError)
    assert fault.hits == 1
    assert fault_proxy.matched(r"^GET /v2/.*/blobs/") == 3
    assert fault_proxy.connections == 2  # the cut one, then one for the two later GETs
    # stall: the head passes, then nothing (a read timeout for the client).
    fault_proxy.add_fault(Fault.stall(r"^GET /v2/.*/blobs/", after_bytes=0, body_only=True, seconds=2))
    with httpx.Client(base_url=fault_proxy.url, trust_env=False, timeout=0.3) as c:
        status, received, error = _stream(c, blob)
    assert (status, received) == (200, b"")
    assert isinstance(error, httpx.ReadTimeout)


def test_fault_proxy_canned_response(fault_proxy: FaultProxy) -> None:
    fault = fault_proxy.add_fault(Fault.respond(r"^GET /v2/", status=429, headers={"Retry-After": "1"}, times=1))
    with httpx.Client(base_url=fault_proxy.url, trust_env=False, timeout=10) as c:

        def chunks() -> object:
            yield b"chunked "
            yield b"body"

        # A chunked request body on the same keep-alive connection must not confuse the request tracking.
        r = c.post("/v2/smoke/canned/blobs/uploads/", content=chunks())  # type: ignore[arg-type]
        assert r.status_code == 202
        r = c.put(f"{r.headers['Location']}&digest={digest_of(b'chunked body')}", content=chunks())  # type: ignore[arg-type]
        assert r.status_code == 201, r.text
        first = c.get("/v2/")
        second = c.get("/v2/")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert second.status_code == 200
    assert fault.hits == 1
    assert fault_proxy.connections == 1
    assert fault_proxy.requests[-2:] == ["GET /v2/ HTTP/1.1", "GET /v2/ HTTP/1.1"]


def test_skopeo_copy_between_registries(
    plain_registry: Registry, token_registry: Registry, registry_factory: RegistryFactory, skopeo: Skopeo
) -> None:
    with registry_client(plain_registry) as c:
        pushed = push_artifact(c, "smoke/skopeo", "v1", {"manifests.tgz": os.urandom(4096)})
    src = f"docker://{plain_registry.host}/smoke/skopeo:v1"
    htpasswd_registry = registry_factory("htpasswd")
    for dest in (htpasswd_registry, token_registry):
        assert dest.cert_dir is not None
        skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-cert-dir",
            str(dest.cert_dir),
            "--dest-creds",
            f"{dest.username}:{dest.password}",
            src,
            f"docker://{dest.host}/smoke/skopeo:v1",
        )
        with registry_client(dest) as c:
            r = c.get("/v2/smoke/skopeo/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == pushed.manifest
        assert r.headers["Docker-Content-Digest"] == pushed.digest
