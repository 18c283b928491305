"""Interop: signatures specman did not write, from the reference tools' own repositories (see each fixture's note).

``tests/fixtures/signature/cosign_legacy_vectors.json``: cosign ``.sig`` layers as cosign wrote them (payload bytes,
annotations) with their public keys, from containers/image's fixtures; each is pushed as a ``.sig`` tag to the real
docker-registry and verified by ``Verifier`` there.  ``sigstore_bundle_vectors.json``: managed-key bundles from the
sigstore conformance suite, and a keyless DSSE bundle written by ``cosign attest`` (cosign's own test data).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from specman.errors import SignatureError, UsageError
from specman.oci.manifest import OCI_MANIFEST, Descriptor, sha256_digest
from specman.signature.bundle import pae, verify_bundle
from specman.signature.cosign import verify_layer
from specman.signature.discovery import signature_tag
from specman.signature.keys import PublicKey, load_public_key
from specman.signature.policy import Mode, Verifier, VerifyPolicy
from tests.fixtures.registry import Registry
from tests.test_sync import remote

FIXTURES = Path(__file__).parent / "fixtures" / "signature"
LEGACY = json.loads((FIXTURES / "cosign_legacy_vectors.json").read_text())
BUNDLES = json.loads((FIXTURES / "sigstore_bundle_vectors.json").read_text())


def legacy_key(case: dict[str, Any]) -> PublicKey:
    return load_public_key(LEGACY["public_keys"][case["public_key"]].encode(), case["public_key"])


@pytest.mark.parametrize("case", LEGACY["cases"], ids=lambda c: c["name"])
def test_cosign_legacy_vectors(case: dict[str, Any]) -> None:
    payload = base64.b64decode(case["payload_base64"])
    signature = base64.b64decode(case["annotations"]["dev.cosignproject.cosign/signature"])
    key = legacy_key(case)
    if case["expect"] == "verified":
        verified = verify_layer(payload, signature, case["manifest_digest"], [key])
        assert verified.signer == key.fingerprint and verified.format == "cosign"
    else:
        with pytest.raises(SignatureError) as caught:
            verify_layer(payload, signature, case["manifest_digest"], [key])
        assert caught.value.reason == case["expect"]


@pytest.mark.parametrize("case", LEGACY["cases"], ids=lambda c: c["name"])
def test_cosign_legacy_vectors_in_a_registry(plain_registry: Registry, case: dict[str, Any]) -> None:
    """The cosign layer exactly as cosign wrote it, as the .sig tag of the signed digest in a real registry."""
    repo = remote(plain_registry)
    payload = base64.b64decode(case["payload_base64"])
    layer = Descriptor(case["layer_media_type"], sha256_digest(payload), len(payload), case["annotations"])
    repo.push_blob(layer, payload)
    config = b"{}"
    config_desc = Descriptor("application/vnd.oci.image.config.v1+json", sha256_digest(config), len(config))
    repo.push_blob(config_desc, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json()],
    }
    digest = case["manifest_digest"]
    repo.push_manifest(signature_tag(digest), json.dumps(manifest).encode(), OCI_MANIFEST)
    verifier = Verifier(VerifyPolicy(Mode.REQUIRED, (legacy_key(case),)))
    verification, cached = verifier.verify(repo, digest, listed=[signature_tag(digest)])
    assert not cached
    if case["expect"] == "verified":
        assert verification.ok, verification
        assert verification.verified is not None and verification.verified.format == "cosign"
    else:
        assert verification.reason == case["expect"], verification


@pytest.mark.parametrize("case", BUNDLES["cases"], ids=lambda c: c["name"])
def test_conformance_managed_key_bundles(case: dict[str, Any]) -> None:
    artifact = BUNDLES["artifact_text"].encode()
    if case["expect"] == "MalformedKey":
        with pytest.raises(UsageError, match="malformed PEM public key"):
            load_public_key(case["public_key"].encode(), case["name"])
        return
    key = load_public_key(case["public_key"].encode(), case["name"])
    data = json.dumps(case["bundle"]).encode()
    if case["expect"] == "verified":
        verified = verify_bundle(data, BUNDLES["artifact_digest"], [key], artifact)
        assert verified.format == "sigstore-bundle"
        # the digest alone is enough for ECDSA (pre-hashed), as it is for a manifest known by digest
        assert verify_bundle(data, BUNDLES["artifact_digest"], [key]).signer == key.fingerprint
        assert case["bundle"]["verificationMaterial"]["publicKey"]["hint"] == key.hint  # cosign's hint format
    other = load_public_key(LEGACY["public_keys"]["cosign.pub"].encode(), "cosign.pub")
    with pytest.raises(SignatureError) as caught:
        verify_bundle(data, BUNDLES["artifact_digest"], [other], artifact)
    assert caught.value.reason == "BadSignature"
    tampered = data.replace(b'"SHA2_256"', b'"SHA2_384"')
    with pytest.raises(SignatureError) as caught:
        verify_bundle(tampered, BUNDLES["artifact_digest"], [key], artifact)
    assert caught.value.reason == "DigestMismatch"


def test_cosign_keyless_bundle_is_refused_with_a_reason_and_its_pae_matches() -> None:
    vector = BUNDLES["cosign_oci_attestation"]
    bundle = json.loads(vector["bundle_text"])
    cert = x509.load_der_x509_certificate(base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"]))
    spki = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    key = load_public_key(spki, "fulcio-cert")
    with pytest.raises(SignatureError) as caught:
        verify_bundle(vector["bundle_text"].encode(), vector["subject_digest"], [key])
    assert caught.value.reason == "Keyless"
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    assert key.verifies(base64.b64decode(envelope["signatures"][0]["sig"]), pae(envelope["payloadType"], payload))
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"]["sha256"] == vector["subject_digest"].partition(":")[2]
