"""The OCI client against the real CNCF distribution registry: plain http, TLS + htpasswd, token auth."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from specman.errors import (
    AuthenticationError,
    AuthorizationError,
    ContentError,
    DigestMismatchError,
    NotFoundError,
    ProtocolError,
    RegistryError,
    TransportError,
)
from specman.oci import (
    Credentials,
    Descriptor,
    DockerConfig,
    LayoutRepository,
    RegistryClient,
    RegistryOptions,
    RemoteRepository,
    RetryPolicy,
    open_repository,
    parse_reference,
    pull_artifact,
    push_artifact,
)
from specman.oci import upload as upload_mod
from specman.oci.auth import Challenge
from specman.oci.manifest import OCI_MANIFEST
from specman.samples import tree_digest
from tests.fixtures.faultproxy import Fault, FaultProxy
from tests.fixtures.registry import Registry
from tests.fixtures.tokenserver import REGISTRY_LEEWAY

FAST_RETRY = RetryPolicy(attempts=4, timeout=30, wait_initial=0.05, wait_max=0.5, wait_jitter=0.05)


def repo(
    registry: Registry | FaultProxy,
    name: str | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
    ca: Path | None = None,
    **kw: object,
) -> RemoteRepository:
    name = name or f"test/{uuid.uuid4().hex[:10]}"
    host = registry.host
    plain = isinstance(registry, FaultProxy) or registry.scheme == "http"
    if ca is None and isinstance(registry, Registry) and registry.ca_file is not None:
        ca = registry.ca_file
    options = RegistryOptions(
        username=user, password=password, plain_http=plain, ca_file=str(ca) if ca else None, retry=FAST_RETRY, **kw
    )  # type: ignore[arg-type]
    result = open_repository(parse_reference(f"{host}/{name}"), options)
    assert isinstance(result, RemoteRepository)
    return result


def make_tree(root: Path, files: int = 20) -> Path:
    for i in range(files):
        path = root / f"d{i % 3}" / f"f{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"i": i, "pad": "x" * (i * 37)}))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def test_push_pull_plain_round_trip(plain_registry: Registry, tree: Path, tmp_path: Path) -> None:
    r = repo(plain_registry)
    pushed = push_artifact(r, tree, "1.0.0")
    pulled = pull_artifact(r, "1.0.0", tmp_path / "out")
    assert pulled.digest == pushed.digest
    assert tree_digest(tmp_path / "out") == tree_digest(tree)
    assert list(r.tags()) == ["1.0.0"]
    assert r.resolve("1.0.0").digest == pushed.digest
    # pull by digest too
    pull_artifact(r, pushed.digest, tmp_path / "by-digest")
    assert tree_digest(tmp_path / "by-digest") == tree_digest(tree)


def test_manifest_has_oras_cli_shape(plain_registry: Registry, tree: Path) -> None:
    r = repo(plain_registry)
    pushed = push_artifact(r, tree, "v1")
    raw = r.fetch_manifest("v1").raw
    assert raw == pushed.manifest
    assert b" " not in raw  # compact Go JSON
    obj = json.loads(raw)
    assert list(obj) == ["schemaVersion", "mediaType", "config", "layers", "annotations"]
    assert obj["mediaType"] == OCI_MANIFEST
    assert obj["config"] == {
        "mediaType": "application/vnd.unknown.config.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    (layer,) = obj["layers"]
    assert list(layer) == ["mediaType", "digest", "size", "annotations"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert layer["annotations"] == {"org.opencontainers.image.title": "manifests.tgz"}
    created = obj["annotations"]["org.opencontainers.image.created"]
    assert len(created) == 20 and created.endswith("Z") and created[10] == "T"


def test_push_is_deterministic_and_skips_existing_blobs(plain_registry: Registry, tree: Path) -> None:
    r = repo(plain_registry)
    first = push_artifact(r, tree, "a")
    second = push_artifact(r, tree, "b")
    assert first.layer.digest == second.layer.digest
    assert first.uploaded and not second.uploaded


def test_tags_pagination(plain_registry: Registry, tmp_path: Path) -> None:
    r = repo(plain_registry)
    blob = tmp_path / "one.txt"
    blob.write_text("hello")
    names = [f"t{i:02d}" for i in range(7)]
    for name in names:
        push_artifact(r, blob, name)
    assert sorted(r.tags()) == names  # distribution 2.8 neither sorts nor pages tags


def test_tags_follow_link_pagination(fault_proxy: FaultProxy) -> None:
    """Harbor and distribution 3 page tag lists with ``n``/``last`` and a ``Link: <...>; rel="next"`` header."""
    pages = {
        r"tags/list\?n=2 ": (b'{"name":"p/q","tags":["a","b"]}', '</v2/p/q/tags/list?n=2&last=b>; rel="next"'),
        r"tags/list\?n=2&last=b ": (b'{"name":"p/q","tags":["c","d"]}', '</v2/p/q/tags/list?last=d&n=2>; rel="next"'),
        r"tags/list\?last=d&n=2 ": (b'{"name":"p/q","tags":["e"]}', ""),
    }
    for pattern, (body, link) in pages.items():
        headers = {"Content-Type": "application/json", **({"Link": link} if link else {})}
        fault_proxy.add_fault(Fault.respond(pattern, status=200, headers=headers, body=body))
    assert list(repo(fault_proxy, "p/q").tags(page_size=2)) == ["a", "b", "c", "d", "e"]


def test_missing_things_are_not_found(plain_registry: Registry, tmp_path: Path) -> None:
    r = repo(plain_registry)
    with pytest.raises(NotFoundError, match=r"NAME_UNKNOWN|MANIFEST_UNKNOWN"):
        r.fetch_manifest("nope")
    assert not r.blob_exists(Descriptor("x", "sha256:" + "0" * 64, 1))
    assert not (tmp_path / "out").exists()


def test_cross_repository_mount(plain_registry: Registry, tree: Path) -> None:
    a = repo(plain_registry)
    pushed = push_artifact(a, tree, "1")
    b = repo(plain_registry)
    assert b.push_blob(pushed.layer, b"unused: mounted", mount_from=a.name) is False
    assert b.blob_exists(pushed.layer)


def test_chunked_upload(plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_mod, "CHUNKED_THRESHOLD", 1000)
    monkeypatch.setattr(upload_mod, "CHUNK_SIZE", 4096)
    data = os.urandom(50_000)
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    r = repo(plain_registry)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert r.push_blob(desc, path) is True
    with r.open_blob(desc) as reader:
        assert reader.read() == data
        reader.verify()


def test_corrupted_blob_in_storage_is_rejected(registry_factory: object, tree: Path, tmp_path: Path) -> None:
    registry = registry_factory()  # type: ignore[operator]
    r = repo(registry)
    pushed = push_artifact(r, tree, "1")
    hexd = pushed.layer.digest.removeprefix("sha256:")
    data_file = registry.storage_dir / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError) as info:
        pull_artifact(r, "1", dest)
    assert pushed.layer.digest in str(info.value)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-config", "src"]  # no staging leftovers


def test_tls_htpasswd(tls_registry: Registry, tree: Path, tmp_path: Path) -> None:
    r = repo(tls_registry, user=tls_registry.username, password=tls_registry.password)
    pushed = push_artifact(r, tree, "1")
    assert pull_artifact(r, "1", tmp_path / "out").digest == pushed.digest


def test_tls_wrong_password_is_unauthorized_and_secret_free(tls_registry: Registry, tree: Path) -> None:
    secret = "Wrong-Pa55word-xyzzy"
    r = repo(tls_registry, user="alice", password=secret)
    with pytest.raises(AuthenticationError) as info:
        push_artifact(r, tree, "1")
    assert "unauthorized" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_tls_unknown_ca_and_insecure(tls_registry: Registry, wrong_ca: Path) -> None:
    with pytest.raises(TransportError, match="certificate"):
        list(repo(tls_registry, ca=wrong_ca, user="alice", password=tls_registry.password).tags())
    with pytest.raises(RegistryError, match="speaks HTTPS"):
        list(open_repository(parse_reference(f"{tls_registry.host}/x/y"), RegistryOptions(plain_http=True)).tags())
    insecure = RegistryOptions(username="alice", password=tls_registry.password, insecure=True)
    r = open_repository(parse_reference(f"{tls_registry.host}/x/y"), insecure)
    with pytest.raises(NotFoundError):
        list(r.tags())


def test_token_auth_push_pull_with_scopes(token_registry: Registry, tree: Path, tmp_path: Path) -> None:
    ts = token_registry.token_server
    assert ts is not None
    r = repo(token_registry, user="alice", password=token_registry.users["alice"])
    ts.reset()
    pushed = push_artifact(r, tree, "1")
    pull_artifact(r, "1", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(tree)
    # one pull,push token serves the push and the pull: tokens are cached and reused
    assert ts.count(user="alice") <= 2, ts.requests
    assert any(
        f"repository:{r.name}:pull,push" in req.granted or any("push" in g for g in req.granted) for req in ts.requests
    )
    # a pull-only user can read but not write: the client asks for the wider scope and then fails clearly
    reader = repo(token_registry, r.name, user="reader", password=token_registry.users["reader"])
    assert reader.resolve("1").digest == pushed.digest
    with pytest.raises(AuthorizationError, match=r"denied \(insufficient_scope") as info:
        push_artifact(reader, tree, "2")
    assert f"repository:{r.name}:pull,push" in str(info.value)
    anonymous = repo(token_registry, r.name)
    with pytest.raises(AuthenticationError, match="requires credentials"):
        list(anonymous.tags())


def test_token_wrong_password(token_registry: Registry) -> None:
    secret = "not-the-password-42"
    r = repo(token_registry, user="alice", password=secret)
    with pytest.raises(AuthenticationError, match="unauthorized") as info:
        list(r.tags())
    assert secret not in str(info.value)


def test_token_expiry_gets_fresh_token(registry_factory: object, tree: Path, tmp_path: Path) -> None:
    import time

    registry = registry_factory("token", token_options={"lifetime": 2, "backdate": REGISTRY_LEEWAY})  # type: ignore[operator]
    ts = registry.token_server
    r = repo(registry, user="alice", password=registry.users["alice"])
    push_artifact(r, tree, "1")
    time.sleep(3)
    before = ts.count()
    pull_artifact(r, "1", tmp_path / "out")
    assert ts.count() > before


def test_token_oauth2_password_and_refresh_grants(token_registry: Registry, tree: Path, tmp_path: Path) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.reset()
    r = repo(token_registry, user="alice", password=token_registry.users["alice"], oauth2=True)
    push_artifact(r, tree, "1")
    assert ts.count(grant_type="password") >= 1
    refresh = r.client.auth.refresh_tokens.get(token_registry.host)
    assert refresh
    ts.reset()
    with_token = RegistryOptions(ca_file=str(token_registry.ca_file), retry=FAST_RETRY)
    r2 = open_repository(parse_reference(f"{token_registry.host}/{r.name}"), with_token)
    assert isinstance(r2, RemoteRepository)
    r2.client.auth._lookup = lambda _host: Credentials(identity_token=refresh)
    pull_artifact(r2, "1", tmp_path / "out")
    assert ts.count(grant_type="refresh_token") >= 1


def test_token_x5c_registry(token_registry_x5c: Registry, tree: Path, tmp_path: Path) -> None:
    r = repo(token_registry_x5c, user="alice", password=token_registry_x5c.users["alice"])
    pushed = push_artifact(r, tree, "1")
    assert pull_artifact(r, "1", tmp_path / "out").digest == pushed.digest


def test_docker_config_auths_are_used(tls_registry: Registry, docker_config: Path, tree: Path) -> None:
    import base64

    auth = base64.b64encode(f"alice:{tls_registry.password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {f"https://{tls_registry.host}": {"auth": auth}}}))
    push_artifact(repo(tls_registry), tree, "from-config")


def test_credential_helper(
    tls_registry: Registry, docker_config: Path, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-spec"
    secret = json.dumps({"Username": "alice", "Secret": tls_registry.password})
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\necho '{secret}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (docker_config / "config.json").write_text(json.dumps({"credHelpers": {tls_registry.host: "spec"}}))
    push_artifact(repo(tls_registry), tree, "from-helper")


def test_resume_after_dropped_connection(plain_registry: Registry, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    big = tmp_path / "big"
    make_tree(big, 5)
    (big / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    direct = repo(plain_registry)
    push_artifact(direct, big, "1")
    fault = fault_proxy.add_fault(Fault.cut(r"GET /v2/.*/blobs/sha256:", after_bytes=1024 * 1024, body_only=True))
    via_proxy = repo(fault_proxy, direct.name)
    result = pull_artifact(via_proxy, "1", tmp_path / "out")
    assert fault.hits == 1
    assert fault_proxy.matched(r"GET /v2/.*/blobs/sha256:") >= 2
    assert result.files >= 6
    assert tree_digest(tmp_path / "out") == tree_digest(big)


def test_429_with_retry_after_is_retried(plain_registry: Registry, fault_proxy: FaultProxy, tree: Path) -> None:
    direct = repo(plain_registry)
    push_artifact(direct, tree, "1")
    fault = fault_proxy.add_fault(
        Fault.respond(r"GET /v2/.*/manifests/", status=429, headers={"Retry-After": "1"}, times=2)
    )
    assert repo(fault_proxy, direct.name).fetch_manifest("1").raw
    assert fault.hits == 2


def test_garbage_replies_are_clear_errors(plain_registry: Registry, fault_proxy: FaultProxy, tree: Path) -> None:
    direct = repo(plain_registry)
    push_artifact(direct, tree, "1")
    html = b"<html><body>Login to the proxy</body></html>"
    fault_proxy.add_fault(
        Fault.respond(r"GET /v2/.*/manifests/", status=200, headers={"Content-Type": "text/html"}, body=html)
    )
    with pytest.raises(ContentError, match="not valid JSON") as info:
        repo(fault_proxy, direct.name).fetch_manifest("1")
    assert "\n" not in str(info.value)
    fault_proxy.add_fault(
        Fault.respond(r"GET /v2/.*/tags/list", status=500, headers={"Content-Type": "text/html"}, body=html, times=None)
    )
    with pytest.raises(ProtocolError, match="HTML"):
        list(repo(fault_proxy, direct.name).tags())


def test_redirect_to_other_host_drops_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "127.0.0.1":
            return httpx.Response(307, headers={"Location": "http://127.0.0.2:1/bucket/blob"})
        return httpx.Response(200, content=b"{}")

    client = RegistryClient(
        "127.0.0.1:1",
        tls=RegistryOptions(plain_http=True).tls,
        credentials=Credentials("u", "p"),
        transport=httpx.MockTransport(handler),
    )
    client.auth._challenges["127.0.0.1:1"] = Challenge("basic")
    response = client.request("GET", "/v2/x/blobs/sha256:" + "0" * 64, what="blob")
    assert response.status_code == 200
    assert "Authorization" in seen[0].headers
    assert "Authorization" not in seen[1].headers


def test_creds_store_helper(
    tls_registry: Registry, docker_config: Path, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``credsStore``: docker-credential-<name> get/store speaks JSON on stdin/stdout (a real helper program)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "store.json"
    helper = bindir / "docker-credential-filestore"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"path = {str(store)!r}\n"
        "try:\n    db = json.load(open(path))\nexcept FileNotFoundError:\n    db = {}\n"
        "op = sys.argv[1]\n"
        "if op == 'store':\n    e = json.load(sys.stdin); db[e['ServerURL']] = e; json.dump(db, open(path, 'w'))\n"
        "elif op == 'get':\n    host = sys.stdin.read().strip()\n"
        "    if host not in db:\n        print('credentials not found in native keychain'); sys.exit(1)\n"
        "    print(json.dumps(db[host]))\n"
        "elif op == 'erase':\n    db.pop(sys.stdin.read().strip(), None); json.dump(db, open(path, 'w'))\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "filestore"}))
    config = DockerConfig()
    assert config.get(tls_registry.host) is None
    assert "docker-credential-filestore" in config.store(
        tls_registry.host, Credentials("alice", tls_registry.password or "")
    )
    assert tls_registry.password not in (docker_config / "config.json").read_text()
    push_artifact(repo(tls_registry), tree, "from-store")
    assert config.erase(tls_registry.host)
    assert config.get(tls_registry.host) is None


def test_requests_ca_bundle_is_ignored(tls_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests' variable must not silently change whom specman trusts (OpenSSL's SSL_CERT_FILE still counts)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_registry.ca_file))
    options = RegistryOptions(username="alice", password=tls_registry.password)
    with pytest.raises(TransportError, match="certificate"):
        list(open_repository(parse_reference(f"{tls_registry.host}/a/b"), options).tags())


def test_persistent_truncation_fails_clearly(plain_registry: Registry, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "random.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    direct = repo(plain_registry)
    push_artifact(direct, big, "1")
    fault_proxy.add_fault(Fault.cut(r"GET /v2/.*/blobs/sha256:", after_bytes=100_000, body_only=True, times=None))
    dest = tmp_path / "out"
    with pytest.raises(TransportError, match="connection") as info:
        pull_artifact(repo(fault_proxy, direct.name), "1", dest)
    assert "\n" not in str(info.value)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "docker-config"]


def test_stalled_download_times_out_and_resumes(
    plain_registry: Registry, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "random.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    direct = repo(plain_registry)
    push_artifact(direct, big, "1")
    fault = fault_proxy.add_fault(
        Fault.stall(r"GET /v2/.*/blobs/sha256:", after_bytes=500_000, body_only=True, seconds=5)
    )
    slow = repo(fault_proxy, direct.name, timeout=1.0)
    pull_artifact(slow, "1", tmp_path / "out")
    assert fault.hits == 1
    assert tree_digest(tmp_path / "out") == tree_digest(big)


def test_file_push_is_single_pass_and_verified(token_registry: Registry, tmp_path: Path) -> None:
    """A file is hashed while it is sent (POST, streamed PATCH, PUT ?digest=), with token auth, and pulls back."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.tgz"
    path.write_bytes(data)
    r = repo(token_registry, user="alice", password=token_registry.users["alice"])
    pushed = push_artifact(r, path, "file")
    assert pushed.layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert pushed.layer.title == "blob.tgz"
    pull_artifact(r, "file", tmp_path / "raw", extract=False)
    assert (tmp_path / "raw" / "blob.tgz").read_bytes() == data
    layout = LayoutRepository(tmp_path / "layout", create=True)
    assert push_artifact(layout, path, "file").layer.digest == pushed.layer.digest


def test_username_flag_takes_the_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-u robot`` (or SPECMAN_USERNAME) with the password in SPECMAN_PASSWORD: both are used (a child
    ``specman serve`` gets its password this way, never on its command line)."""
    monkeypatch.setenv("SPECMAN_PASSWORD", "from-env")
    creds = RegistryOptions(username="robot").credentials_for("registry.example")
    assert creds is not None and (creds.username, creds.password) == ("robot", "from-env")
    creds = RegistryOptions(username="robot", password="flag").credentials_for("registry.example")
    assert creds is not None and creds.password == "flag"
