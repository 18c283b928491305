"""Sigstore bundles attached as OCI 1.1 referrers (sigstore/cosign specs/BUNDLE_SPEC.md, protobuf-specs bundle).

A bundle referrer is an image manifest with ``artifactType`` ``application/vnd.dev.sigstore.bundle.v0.3+json``, the
empty config, exactly one layer holding the bundle JSON, and ``subject`` = the signed manifest.  The bundle is
protojson (camelCase, bytes in base64).  Key-based verification, as ``cosign verify --key`` and sigstore-go do it
with a key (``WithKey``):

* the media type is a Sigstore bundle (v0.1 to v0.3); the verification material is a public key (a certificate
  means keyless signing, which this verifier does not accept: "expected key signature, not certificate");
* ``dsseEnvelope`` (what cosign v3 ``sign`` writes): exactly one signature, checked over the DSSE PAE
  (``"DSSEv1" SP len(type) SP type SP len(payload) SP payload``) with a trusted key; ``payloadType`` must be
  ``application/vnd.in-toto+json`` and one of the in-toto statement's subjects must carry ``sha256`` = the manifest's
  hex digest; when both the envelope ``keyid`` and the ``publicKey.hint`` are set they must agree;
* ``messageSignature``: the signature over the signed manifest itself (its bytes hash to the manifest digest, so an
  ECDSA/RSA signature is checked against the digest as a pre-hashed SHA-256; Ed25519 needs the manifest bytes);
  ``messageDigest`` must name the manifest digest.

What is *not* checked offline (said in the status message as "tlog not checked"): transparency log entries (Rekor
inclusion proofs, signed entry timestamps, checkpoints) and RFC 3161 timestamps — like cosign with
``--insecure-ignore-tlog`` and Flux with a key.  The PAE is written here (six lines) because the only Python
implementations are private helpers of sigstore-python (``sigstore.dsse._pae``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from specman.errors import SignatureError
from specman.oci import Repository
from specman.oci.manifest import OCI_MANIFEST, Descriptor, Manifest, sha256_digest
from specman.signature.discovery import BUNDLE_ARTIFACT_TYPE
from specman.signature.keys import PrivateKey, PublicKey
from specman.signature.remote import read_blob
from specman.signature.result import Verified

__all__ = ["BUNDLE_MEDIA_TYPES", "build_bundle", "pae", "sign_bundle", "verify_bundle", "verify_bundle_manifest"]

BUNDLE_MEDIA_TYPES: Final = (
    BUNDLE_ARTIFACT_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
IN_TOTO: Final = "application/vnd.in-toto+json"
STATEMENT_V1: Final = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE: Final = "https://sigstore.dev/cosign/sign/v1"
EMPTY_MEDIA_TYPE: Final = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB: Final = b"{}"
MAX_SUBJECTS: Final = 1024


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding (sigstore/protobuf-specs envelope.proto)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"bundle: {what} is missing", reason="Malformed")
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"bundle: {what} is not valid base64", reason="Malformed") from None


def _prehashed(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    try:
        if isinstance(key.key, ec.EllipticCurvePublicKey):
            key.key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return True
        if isinstance(key.key, rsa.RSAPublicKey):
            key.key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _material(bundle: Mapping[str, Any]) -> str | None:
    """The public key hint; SignatureError when the bundle was signed with a certificate (keyless)."""
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureError("bundle: no verificationMaterial", reason="Malformed")
    if "certificate" in material or "x509CertificateChain" in material:
        raise SignatureError(
            "bundle is signed with a certificate (keyless); expected a key signature", reason="Keyless"
        )
    public_key = material.get("publicKey")
    if not isinstance(public_key, dict):
        raise SignatureError("bundle: verificationMaterial has no publicKey", reason="Malformed")
    hint = public_key.get("hint")
    return hint if isinstance(hint, str) and hint else None


def _verify_dsse(envelope: Any, digest: str, keys: Sequence[PublicKey], hint: str | None) -> PublicKey:
    if not isinstance(envelope, dict):
        raise SignatureError("bundle: dsseEnvelope is not an object", reason="Malformed")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO:
        raise SignatureError(f"bundle: DSSE payloadType {payload_type!r} is not {IN_TOTO}", reason="WrongType")
    payload = _b64(envelope.get("payload"), "DSSE payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise SignatureError("bundle: a DSSE envelope must hold exactly one signature", reason="Malformed")
    keyid = signatures[0].get("keyid")
    if keyid and hint and keyid != hint:
        raise SignatureError("bundle: the DSSE keyid does not match the public key hint", reason="Malformed")
    signature = _b64(signatures[0].get("sig"), "DSSE signature")
    message = pae(payload_type, payload)
    key = next((k for k in keys if k.verifies(signature, message)), None)
    if key is None:
        raise SignatureError("the bundle's signature does not verify with any trusted key", reason="BadSignature")
    _check_statement(payload, digest)
    return key


def _check_statement(payload: bytes, digest: str) -> None:
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        if not isinstance(subjects, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise SignatureError("bundle: the DSSE payload is not an in-toto statement", reason="BadPayload") from None
    if len(subjects) > MAX_SUBJECTS:
        raise SignatureError(f"bundle: more than {MAX_SUBJECTS} statement subjects", reason="TooLarge")
    algorithm, _, hexdigest = digest.partition(":")
    for subject in subjects:
        named = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(named, dict) and named.get(algorithm) == hexdigest:
            return
    raise SignatureError(f"the bundle's statement does not name {digest}", reason="DigestMismatch")


def _verify_message(content: Any, digest: str, keys: Sequence[PublicKey], manifest: bytes | None) -> PublicKey:
    if not isinstance(content, dict):
        raise SignatureError("bundle: messageSignature is not an object", reason="Malformed")
    signature = _b64(content.get("signature"), "message signature")
    message_digest = content.get("messageDigest")
    if isinstance(message_digest, dict) and message_digest.get("digest") is not None:
        named = _b64(message_digest.get("digest"), "message digest")
        if message_digest.get("algorithm") != "SHA2_256" or "sha256:" + named.hex() != digest:
            raise SignatureError(f"the bundle's message digest is not {digest}", reason="DigestMismatch")
    raw = bytes.fromhex(digest.partition(":")[2])
    for key in keys:
        if manifest is not None and key.verifies(signature, manifest):
            return key
        if _prehashed(key, signature, raw):
            return key
    raise SignatureError("the bundle's signature does not verify with any trusted key", reason="BadSignature")


def verify_bundle(data: bytes, digest: str, keys: Sequence[PublicKey], manifest: bytes | None = None) -> Verified:
    """Verify a bundle's JSON ``data`` as a signature of the manifest ``digest`` (rules in the module docstring)."""
    try:
        bundle = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("bundle: not valid JSON", reason="Malformed") from None
    if not isinstance(bundle, dict):
        raise SignatureError("bundle: not a JSON object", reason="Malformed")
    if bundle.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise SignatureError(f"bundle: unknown mediaType {bundle.get('mediaType')!r}", reason="WrongType")
    hint = _material(bundle)
    if "dsseEnvelope" in bundle:
        key = _verify_dsse(bundle["dsseEnvelope"], digest, keys, hint)
    elif "messageSignature" in bundle:
        key = _verify_message(bundle["messageSignature"], digest, keys, manifest)
    else:
        raise SignatureError("bundle: neither dsseEnvelope nor messageSignature", reason="Malformed")
    return Verified("sigstore-bundle", key.fingerprint, key.name)


def verify_bundle_manifest(
    repo: Repository, referrer: Manifest, digest: str, keys: Sequence[PublicKey], manifest: bytes | None = None
) -> Verified:
    """Verify the bundle referrer ``referrer`` (one bundle layer, ``subject`` = ``digest``)."""
    if referrer.subject is None or referrer.subject.digest != digest:
        raise SignatureError("bundle referrer: its subject is not the version's manifest", reason="DigestMismatch")
    if len(referrer.layers) != 1 or not referrer.layers[0].media_type.startswith("application/vnd.dev.sigstore.bundle"):
        raise SignatureError("bundle referrer: expected exactly one Sigstore bundle layer", reason="Malformed")
    data = read_blob(repo, referrer.layers[0], f"bundle {referrer.layers[0].digest[:19]}")
    return verify_bundle(data, digest, keys, manifest)


def build_bundle(digest: str, key: PrivateKey, annotations: Mapping[str, str] | None = None) -> bytes:
    """The bundle cosign v3 ``sign --key`` writes (DSSE, in-toto Statement v1, cosign/sign/v1), without a tlog entry."""
    algorithm, _, hexdigest = digest.partition(":")
    subject: dict[str, Any] = {"digest": {algorithm: hexdigest}}
    if annotations:
        subject["annotations"] = dict(annotations)
    statement = {"_type": STATEMENT_V1, "subject": [subject], "predicateType": COSIGN_SIGN_PREDICATE, "predicate": {}}
    payload = json.dumps(statement, separators=(",", ":")).encode()
    signature = key.sign(pae(IN_TOTO, payload))
    hint = key.public.hint
    bundle = {
        "mediaType": BUNDLE_ARTIFACT_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": hint}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def sign_bundle(repo: Repository, subject: Descriptor, key: PrivateKey) -> tuple[bytes, bytes]:
    """Push a bundle referrer of ``subject``; (the referrer manifest bytes, the bundle bytes), not yet indexed."""
    bundle = build_bundle(subject.digest, key)
    layer = Descriptor(BUNDLE_ARTIFACT_TYPE, sha256_digest(bundle), len(bundle))
    config = Descriptor(EMPTY_MEDIA_TYPE, sha256_digest(EMPTY_BLOB), len(EMPTY_BLOB))
    repo.push_blob(layer, bundle)
    repo.push_blob(config, EMPTY_BLOB)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "config": config.to_json(),
        "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
            "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    return json.dumps(manifest, separators=(",", ":")).encode(), bundle
