"""Signatures beside the manifests, against the real docker-registry (no referrers API: the fallback tag is used).

Tags that are not versions never fail a sync; ``--verify required`` publishes only signed versions and keeps the
old good digest; ``audit`` publishes anyway; results are cached by digest.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.errors import UsageError
from specman.oci import RegistryOptions, RemoteRepository, Repository, open_repository, parse_reference
from specman.oci.manifest import OCI_MANIFEST, Descriptor, sha256_digest
from specman.signature.bundle import sign_bundle
from specman.signature.cosign import SIGNATURE_ANNOTATION, SIMPLESIGNING, sign_legacy
from specman.signature.discovery import signature_tag
from specman.signature.keys import PrivateKey, generate_key
from specman.signature.policy import Mode, Verifier, VerifyPolicy
from specman.signature.remote import push_referrer
from specman.store import Store
from specman.sync import reconcile_once
from tests.fixtures.faultproxy import Fault, FaultProxy
from tests.fixtures.registry import Registry
from tests.test_sync import FAST_RETRY, push_tree, remote


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data", durable=False) as opened:
        yield opened


@pytest.fixture
def key() -> PrivateKey:
    return generate_key()


def policy(mode: str, *keys: PrivateKey, tags: tuple[str, ...] = ()) -> Verifier:
    return Verifier(VerifyPolicy(Mode(mode), tuple(k.public for k in keys), tags))


def sign(repo: Repository, tag: str, key: PrivateKey) -> str:
    digest = repo.resolve(tag).digest
    sign_legacy(repo, digest, f"{repo.display}:{tag}", key)
    return digest


def test_signature_tags_are_never_versions(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    digest = sign(repo, "1.0.0", key)
    # an .att and an .sbom tag as cosign attaches them, and a referrer pushed under an ordinary tag name
    for suffix in ("att", "sbom"):
        sig = repo.fetch_manifest(signature_tag(digest))
        repo.push_manifest(signature_tag(digest, suffix), sig.raw, OCI_MANIFEST)
    subject = repo.resolve("1.0.0")
    referrer, _ = sign_bundle(repo, subject, key)
    push_referrer(repo, referrer, OCI_MANIFEST, digest)
    repo.push_manifest("bundle-by-name", referrer, OCI_MANIFEST)

    result = reconcile_once(repo, store)
    assert result.ok, result.failed
    assert result.digests == {"1.0.0": digest}
    kinds = sorted(a["kind"] for a in result.attached[digest])
    assert kinds == ["attestation", "referrers", "sbom", "signature", "sigstore-bundle"]
    assert "bundle-by-name" not in result.failed and "bundle-by-name" not in result.digests
    again = reconcile_once(repo, store)
    assert again.ok and again.fetched == ()


def test_required_publishes_signed_and_keeps_the_old_good_digest(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "good"}, tmp_path)
    good = sign(repo, "1.0.0", key)
    push_tree(repo, "2.0.0", {"b.json": "unsigned"}, tmp_path)
    verifier = policy("required", key)

    first = reconcile_once(repo, store, verifier=verifier)
    assert first.digests == {"1.0.0": good}
    assert "2.0.0" in first.failed and "no signature found" in first.failed["2.0.0"]
    assert first.verifications["1.0.0"]["result"] == "verified"
    assert first.verifications["1.0.0"]["signer"] == key.public.fingerprint
    assert first.verifications["2.0.0"]["result"] == "unsigned"

    # a new unsigned push over the good tag: the signed digest stays served
    push_tree(repo, "1.0.0", {"a.json": "evil"}, tmp_path)
    second = reconcile_once(repo, store, verifier=verifier)
    assert second.digests["1.0.0"] == good
    assert "1.0.0" in second.failed
    served = store.current()
    assert served is not None and (served.tree / "a.json").read_text() == "good"

    # signed with another key: still refused, with the reason
    other = generate_key()
    bad = sign(repo, "1.0.0", other)
    third = reconcile_once(repo, store, verifier=verifier)
    assert third.digests["1.0.0"] == good
    assert third.verifications["1.0.0"]["reason"] == "BadSignature"
    assert third.verifications["1.0.0"]["digest"] == bad

    # now signed with the trusted key: published
    sign(repo, "1.0.0", key)
    fourth = reconcile_once(repo, store, verifier=verifier)
    assert fourth.digests["1.0.0"] == bad
    assert fourth.verifications["1.0.0"]["result"] == "verified"


def test_audit_publishes_and_reports(plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path) -> None:
    repo = remote(plain_registry)
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    result = reconcile_once(repo, store, verifier=policy("audit", key))
    assert result.ok and result.digests == {"1.0.0": digest}
    assert result.verifications["1.0.0"]["result"] == "unsigned"
    assert result.verification_counts == {"unsigned": 1}


def test_policy_scoped_by_tag_glob(plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path) -> None:
    repo = remote(plain_registry)
    push_tree(repo, "4.5.0", {"a.json": "1"}, tmp_path)
    push_tree(repo, "dev-1", {"a.json": "2"}, tmp_path)
    result = reconcile_once(repo, store, verifier=policy("required", key, tags=("4.*",)))
    assert set(result.digests) == {"dev-1"}
    assert set(result.failed) == {"4.5.0"}
    assert "dev-1" not in result.verifications


def test_bundle_referrer_through_the_fallback_tag(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    repo = remote(plain_registry)
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    referrer, _ = sign_bundle(repo, repo.resolve("1.0.0"), key)
    push_referrer(repo, referrer, OCI_MANIFEST, digest)
    verifier = policy("required", key)
    result = reconcile_once(repo, store, verifier=verifier)
    assert result.digests == {"1.0.0": digest}
    assert result.verifications["1.0.0"]["format"] == "sigstore-bundle"
    assert verifier.support.api == {repo.display: False}  # docker-registry 2.8 has no referrers API


def test_unchanged_tags_are_not_verified_again(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    sign(repo, "1.0.0", key)
    verifier = policy("required", key)
    assert reconcile_once(repo, store, verifier=verifier).verification_counts == {"verified": 1}
    second = reconcile_once(repo, store, verifier=verifier)
    assert second.verification_counts == {} and second.verifications["1.0.0"]["result"] == "verified"


def _push_sig_manifest(repo: RemoteRepository, digest: str, layers: list[Descriptor]) -> None:
    config = b"{}"
    repo.push_blob(Descriptor("application/vnd.oci.image.config.v1+json", sha256_digest(config), 2), config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config), "size": 2},
        "layers": [d.to_json() for d in layers],
    }
    repo.push_manifest(signature_tag(digest), json.dumps(manifest).encode(), OCI_MANIFEST)


def _layer(repo: Repository, payload: bytes, signature: str, media_type: str = SIMPLESIGNING) -> Descriptor:
    desc = Descriptor(media_type, sha256_digest(payload), len(payload), {SIGNATURE_ANNOTATION: signature})
    repo.push_blob(desc, payload)
    return desc


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered", "BadSignature"),
        ("other-digest", "DigestMismatch"),
        ("wrong-type", "WrongType"),
        ("bad-base64", "Malformed"),
        ("bad-json", "BadPayload"),
        ("huge", "TooLarge"),
        ("media-type", "WrongType"),
    ],
)
def test_bad_signatures_give_one_reason(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path, case: str, reason: str
) -> None:
    from specman.signature.cosign import build_payload

    repo = remote(plain_registry)
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    payload = build_payload(digest, "x")
    media_type = SIMPLESIGNING
    if case == "tampered":
        signature = key.sign(payload)
        payload = payload.replace(b'"optional":null', b'"optional":{"a":"b"}')
    elif case == "other-digest":
        payload = build_payload("sha256:" + "0" * 64, "x")
        signature = key.sign(payload)
    elif case == "wrong-type":
        payload = payload.replace(b"cosign container image signature", b"atomic container signature")
        signature = key.sign(payload)
    elif case == "bad-json":
        payload = b"{not json"
        signature = key.sign(payload)
    elif case == "huge":
        payload = b" " * (1024 * 1024 + 1)
        signature = key.sign(payload)
    elif case == "media-type":
        signature = key.sign(payload)
        media_type = "application/octet-stream"
    else:
        signature = b""
    text = "%%%not-base64" if case == "bad-base64" else base64.b64encode(signature).decode()
    _push_sig_manifest(repo, digest, [_layer(repo, payload, text, media_type)])
    result = reconcile_once(repo, store, verifier=policy("required", key))
    assert result.digests == {}
    assert result.verifications["1.0.0"]["reason"] == reason, result.verifications
    assert "\n" not in result.failed["1.0.0"]


def test_verify_needs_a_key() -> None:
    with pytest.raises(UsageError, match="--verify-key"):
        VerifyPolicy(Mode.REQUIRED)


def test_signature_written_by_specman_verifies_with_openssl(
    plain_registry: Registry, key: PrivateKey, tmp_path: Path
) -> None:
    repo = remote(plain_registry)
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    _, payload = sign_legacy(repo, digest, "r", key)
    layer = repo.fetch_manifest(signature_tag(digest)).layers[-1]
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig").write_bytes(base64.b64decode(layer.annotations[SIGNATURE_ANNOTATION]))
    (tmp_path / "pub").write_bytes(key.public.pem())
    assert layer.digest == sha256_digest(payload)
    out = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            tmp_path / "pub",
            "-signature",
            tmp_path / "sig",
            tmp_path / "payload",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "Verified OK", out
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest


def proxied(proxy: FaultProxy, name: str) -> RemoteRepository:
    options = RegistryOptions(plain_http=True, retry=FAST_RETRY)
    repo = open_repository(parse_reference(f"{proxy.host}/{name}"), options)
    assert isinstance(repo, RemoteRepository)
    return repo


def test_requests_a_signed_sync_makes(
    plain_registry: Registry, fault_proxy: FaultProxy, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    name = f"sigreq/{uuid.uuid4().hex[:10]}"
    direct = remote(plain_registry, name)
    tags = [f"1.0.{i}" for i in range(5)]
    for tag in tags:
        push_tree(direct, tag, {"a.json": tag}, tmp_path)
        sign(direct, tag, key)
    repo = proxied(fault_proxy, name)
    verifier = policy("required", key)
    first = reconcile_once(repo, store, verifier=verifier)
    assert first.ok and set(first.digests) == set(tags)
    fault_proxy.reset()
    second = reconcile_once(repo, store, verifier=verifier)
    assert second.ok and second.fetched == ()
    manifests = [r for r in fault_proxy.requests if "/manifests/" in r]
    assert len(manifests) == len(tags), manifests  # one HEAD per version tag, nothing for the signatures
    assert not [r for r in fault_proxy.requests if "/blobs/" in r or "/referrers/" in r]

    # a new signed version: its .sig manifest and payload blob, nothing more for the legacy form
    push_tree(direct, "2.0.0", {"a.json": "2"}, tmp_path)
    digest = sign(direct, "2.0.0", key)
    fault_proxy.reset()
    third = reconcile_once(repo, store, verifier=verifier)
    assert third.digests["2.0.0"] == digest
    sig_requests = [r for r in fault_proxy.requests if signature_tag(digest) in r]
    assert len(sig_requests) == 1, fault_proxy.requests
    assert not [r for r in fault_proxy.requests if "/referrers/" in r]  # known: no referrers API here


def test_referrers_api_garbage_falls_back_to_the_tag(
    plain_registry: Registry, fault_proxy: FaultProxy, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    name = f"sigref/{uuid.uuid4().hex[:10]}"
    direct = remote(plain_registry, name)
    digest = push_tree(direct, "1.0.0", {"a.json": "1"}, tmp_path)
    referrer, _ = sign_bundle(direct, direct.resolve("1.0.0"), key)
    push_referrer(direct, referrer, OCI_MANIFEST, digest)
    fault_proxy.add_fault(
        Fault.respond(r"/referrers/", status=200, headers={"Content-Type": "text/html"}, body=b"<html>", times=None)
    )
    result = reconcile_once(proxied(fault_proxy, name), store, verifier=policy("required", key))
    assert result.digests == {"1.0.0": digest}
    assert result.verifications["1.0.0"]["format"] == "sigstore-bundle"


def test_registry_errors_are_reported_not_cached(
    plain_registry: Registry, fault_proxy: FaultProxy, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    name = f"sigerr/{uuid.uuid4().hex[:10]}"
    direct = remote(plain_registry, name)
    push_tree(direct, "1.0.0", {"a.json": "1"}, tmp_path)
    digest = sign(direct, "1.0.0", key)
    repo = proxied(fault_proxy, name)
    verifier = policy("required", key)
    fault_proxy.add_fault(Fault.respond(re.escape(signature_tag(digest)), status=500, times=None))
    failed = reconcile_once(repo, store, verifier=verifier)
    assert failed.verifications["1.0.0"]["result"] == "error"
    assert "cannot check signatures" in failed.failed["1.0.0"]
    fault_proxy.clear_faults()
    assert reconcile_once(repo, store, verifier=verifier).digests == {"1.0.0": digest}


def test_huge_signature_manifest_is_capped(
    plain_registry: Registry, store: Store, key: PrivateKey, tmp_path: Path
) -> None:
    """More layers than cosign allows (1000): refused before any payload is fetched.  (Manifests over 4 MiB are
    refused by the OCI client, and docker-registry refuses to store them anyway.)"""
    repo = remote(plain_registry)
    digest = push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    layer = _layer(repo, b"{}", base64.b64encode(key.sign(b"{}")).decode())
    _push_sig_manifest(repo, digest, [layer] * 1001)
    result = reconcile_once(repo, store, verifier=policy("required", key))
    assert result.digests == {}
    assert result.verifications["1.0.0"]["reason"] == "TooLarge"
    assert "more than 1000" in result.verifications["1.0.0"]["message"]
