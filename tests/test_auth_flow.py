"""The registry auth flow on replies the real registry never sends (ECR's 403 on an expired token, a broken
token service): httpx's MockTransport is the seam for exactly these faults.  Everything the CNCF registry does
answer is tested against it in test_oci_registry.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from specman.errors import AuthenticationError, ProtocolError
from specman.oci import Credentials, RegistryClient, RetryPolicy, TLSOptions
from specman.oci.auth import merge_scopes, parse_challenge, request_scopes

REALM = "https://auth.test/token"
CHALLENGE = f'Bearer realm="{REALM}",service="reg",scope="repository:a/b:pull"'


def client(handler: Callable[[httpx.Request], httpx.Response], creds: Credentials | None = None) -> RegistryClient:
    return RegistryClient(
        "reg.test",
        tls=TLSOptions(),
        credentials=creds or Credentials("u", "p"),
        retry=RetryPolicy(attempts=1),
        transport=httpx.MockTransport(handler),
    )


def token_reply(request: httpx.Request, counter: list[str]) -> httpx.Response:
    counter.append(request.url.params.get("scope", "") or request.content.decode())
    return httpx.Response(200, json={"token": f"t{len(counter)}", "expires_in": 300})


def test_parse_challenge_and_scopes() -> None:
    ch = parse_challenge(
        'Bearer realm="https://r/t",service="s",scope="repository:x:pull,push",error="insufficient_scope"'
    )
    assert ch is not None
    assert (ch.scheme, ch.realm, ch.service, ch.scope, ch.error) == (
        "bearer",
        "https://r/t",
        "s",
        "repository:x:pull,push",
        "insufficient_scope",
    )
    assert parse_challenge('Basic realm="Registry Realm"') is not None
    assert parse_challenge("Negotiate abc") is None
    assert merge_scopes("repository:x:push", "repository:x:pull repository:y:pull") == (
        "repository:x:pull,push repository:y:pull"
    )
    put = httpx.Request("POST", "https://h/v2/a/b/blobs/uploads/?mount=sha256:1&from=c/d")
    assert request_scopes(put) == "repository:a/b:pull,push repository:c/d:pull"
    assert request_scopes(httpx.Request("GET", "https://h/v2/a/b/manifests/1")) == "repository:a/b:pull"


def test_ecr_403_on_expired_token_gets_one_fresh_token() -> None:
    tokens: list[str] = []
    state = {"expired": "t1"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return token_reply(request, tokens)
        auth = request.headers.get("Authorization", "")
        if not auth:
            return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})
        if auth == f"Bearer {state['expired']}":
            return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "token expired"}]})
        return httpx.Response(200, json={"name": "a/b", "tags": ["1"]})

    c = client(handler)
    state["expired"] = "none"
    assert list(c.repository("a/b").tags()) == ["1"]  # t1 issued and accepted
    state["expired"] = "t1"  # the cached t1 now expires server-side: ECR answers 403 without a challenge
    assert list(c.repository("a/b").tags()) == ["1"]
    assert len(tokens) == 2


def test_insufficient_scope_requests_wider_scope_and_preemptive_put() -> None:
    tokens: list[str] = []
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return token_reply(request, tokens)
        auth = request.headers.get("Authorization", "")
        if request.method == "PUT":
            bodies.append(request.read())
        if not auth:
            return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})
        if request.method != "GET" and auth == "Bearer t1":
            wide = CHALLENGE.replace(":pull", ":pull,push") + ',error="insufficient_scope"'
            return httpx.Response(401, headers={"WWW-Authenticate": wide})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/a/b/blobs/uploads/u1?_state=x"})
        if request.method == "PUT":
            return httpx.Response(201)
        return httpx.Response(200, json={"tags": []})

    c = client(handler)
    list(c.repository("a/b").tags())  # learns the challenge, t1 = pull
    response = c.request("POST", "/v2/a/b/blobs/uploads/", what="upload", ok=(202,))
    assert tokens[1] == "repository:a/b:pull,push"
    c.request("PUT", "/v2/a/b/blobs/uploads/u1?_state=x&digest=sha256:" + "0" * 64, what="put", ok=(201,), content=b"x")
    assert bodies == [b"x"]  # the cached pull,push token went with the first and only PUT
    assert response.status_code == 202


def test_token_service_failures_are_clear() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, text="<html>maintenance</html>")
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    with pytest.raises(ProtocolError, match="did not return JSON"):
        list(client(broken).repository("a/b").tags())

    def denied(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(401, json={"details": "bad creds"})
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    secret = "pa55-word-never-shown"
    with pytest.raises(AuthenticationError, match="unauthorized") as info:
        list(client(denied, Credentials("u", secret)).repository("a/b").tags())
    assert secret not in str(info.value)
    assert secret not in repr(Credentials("u", secret))

    def odd_realm(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="file:///etc/passwd",service="x"'})

    with pytest.raises(ProtocolError, match="not an http"):
        list(client(odd_realm).repository("a/b").tags())


def test_oauth2_post_falls_back_to_get() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            seen.append(request.method)
            if request.method == "POST":
                return httpx.Response(404)
            return httpx.Response(200, content=json.dumps({"access_token": "tok"}).encode())
        if request.headers.get("Authorization") == "Bearer tok":
            return httpx.Response(200, json={"tags": ["x"]})
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    c = client(handler)
    c.auth.oauth2 = True
    assert list(c.repository("a/b").tags()) == ["x"]
    assert seen == ["POST", "GET"]
