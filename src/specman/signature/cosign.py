"""cosign's key-based signatures in the legacy tag form: ``sha256-<hex>.sig`` (sigstore/cosign specs/SIGNATURE_SPEC.md).

The ``.sig`` manifest holds one layer per signature.  Each layer is typed
``application/vnd.dev.cosign.simplesigning.v1+json``; its blob is the *simple signing* payload, and its descriptor
carries the base64 signature in the annotation ``dev.cosignproject.cosign/signature``.  A version verifies when at
least one layer passes every check, in this order (cosign ``VerifyImageSignatures`` with its claim verifier, plus
containers/image's stricter payload checks):

1. the layer's media type, and a signature annotation that is valid base64;
2. the payload blob, at most ``MAX_PAYLOAD`` bytes, fetched by its digest and checked against it;
3. the signature over the payload bytes *exactly as stored* (never re-serialised) with one of the trusted keys;
4. the payload is JSON with ``critical.image.docker-manifest-digest`` equal to the version's manifest digest and
   ``critical.type`` equal to ``cosign container image signature`` (``docker-reference`` is not checked, as cosign).

Offline limits: a ``dev.sigstore.cosign/bundle`` (Rekor SET) or certificate annotation is not checked — the trust
comes from the key alone, like ``cosign verify --key … --insecure-ignore-tlog`` and Flux with a key.

Signing (``sign_legacy``) writes what cosign writes: the compact Go JSON payload, an ECDSA/RSA/Ed25519 signature
with the annotation, appended to the existing ``.sig`` manifest (read-modify-write, as cosign does).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from specman.errors import NotFoundError, SignatureError
from specman.oci import Repository
from specman.oci.manifest import OCI_MANIFEST, Descriptor, Manifest, sha256_digest
from specman.signature.discovery import signature_tag
from specman.signature.keys import PrivateKey, PublicKey
from specman.signature.remote import MAX_LAYERS, read_blob
from specman.signature.result import Verified

__all__ = [
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING",
    "build_payload",
    "check_payload",
    "sign_legacy",
    "verify_layer",
    "verify_legacy",
]

SIMPLESIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
COSIGN_TYPE: Final = "cosign container image signature"
IMAGE_CONFIG: Final = "application/vnd.oci.image.config.v1+json"


def build_payload(digest: str, reference: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The simple signing payload cosign writes: compact JSON in Go field order, no trailing newline."""
    obj = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": dict(annotations) if annotations else None,
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def check_payload(payload: bytes, digest: str) -> dict[str, Any]:
    """The parsed payload if it names ``digest`` with cosign's type; SignatureError saying what is wrong."""
    try:
        obj = json.loads(payload)
        critical = obj["critical"]
        named, kind = critical["image"]["docker-manifest-digest"], critical["type"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError("the signed payload is not a simple signing JSON document", reason="BadPayload") from None
    if kind != COSIGN_TYPE:
        raise SignatureError(f"the signed payload has type {kind!r}, not {COSIGN_TYPE!r}", reason="WrongType")
    if named != digest:
        raise SignatureError(f"the signature is for {named}, not for {digest}", reason="DigestMismatch")
    return dict(obj)


def _signature_bytes(layer: Descriptor) -> bytes:
    text = layer.annotations.get(SIGNATURE_ANNOTATION)
    if not text:
        raise SignatureError(f"layer {layer.digest[:19]} has no {SIGNATURE_ANNOTATION} annotation", reason="Malformed")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(
            f"layer {layer.digest[:19]}: the signature is not valid base64", reason="Malformed"
        ) from None


def verify_layer(payload: bytes, signature: bytes, digest: str, keys: Sequence[PublicKey]) -> Verified:
    """Check one payload + signature against ``keys`` and the manifest ``digest`` (steps 3 and 4)."""
    for key in keys:
        if key.verifies(signature, payload):
            check_payload(payload, digest)
            return Verified("cosign", key.fingerprint, key.name)
    raise SignatureError("the signature does not verify with any trusted key", reason="BadSignature")


def verify_legacy(repo: Repository, digest: str, keys: Sequence[PublicKey], sig_manifest: Manifest) -> Verified:
    """The first layer of ``sig_manifest`` that verifies; SignatureError with the first layer's reason otherwise."""
    if sig_manifest.is_index or not sig_manifest.layers:
        raise SignatureError(f"{signature_tag(digest)} holds no signature layers", reason="Malformed")
    if len(sig_manifest.layers) > MAX_LAYERS:
        raise SignatureError(
            f"{signature_tag(digest)} has {len(sig_manifest.layers)} layers, more than {MAX_LAYERS}", reason="TooLarge"
        )
    first: SignatureError | None = None
    for layer in sig_manifest.layers:
        try:
            if layer.media_type != SIMPLESIGNING:
                raise SignatureError(f"layer media type {layer.media_type} is not {SIMPLESIGNING}", reason="WrongType")
            signature = _signature_bytes(layer)
            payload = read_blob(repo, layer, f"signature payload {layer.digest[:19]}")
            return verify_layer(payload, signature, digest, keys)
        except SignatureError as exc:
            first = first or exc
    assert first is not None
    raise first


def _config(layers: Sequence[Descriptor]) -> bytes:
    """An image config as go-containerregistry writes for cosign's signature image (cosign ignores it)."""
    obj = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def sign_legacy(
    repo: Repository,
    digest: str,
    reference: str,
    key: PrivateKey,
    *,
    annotations: Mapping[str, str] | None = None,
    existing_tags: Collection[str] | None = None,
) -> tuple[str, bytes]:
    """Append a signature of ``digest`` to its ``.sig`` tag; (the ``.sig`` manifest digest, the payload)."""
    payload = build_payload(digest, reference, annotations)
    signature = base64.b64encode(key.sign(payload)).decode()
    layer = Descriptor(SIMPLESIGNING, sha256_digest(payload), len(payload), {SIGNATURE_ANNOTATION: signature})
    repo.push_blob(layer, payload)
    tag = signature_tag(digest)
    layers: list[Descriptor] = []
    if existing_tags is None or tag in existing_tags:
        try:
            current = repo.fetch_manifest(tag)
            layers = [d for d in current.layers if d.digest != layer.digest][: MAX_LAYERS - 1]
        except NotFoundError:
            layers = []
    layers.append(layer)
    config = _config(layers)
    config_desc = Descriptor(IMAGE_CONFIG, sha256_digest(config), len(config))
    repo.push_blob(config_desc, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    data = json.dumps(manifest, separators=(",", ":")).encode()
    return repo.push_manifest(tag, data, OCI_MANIFEST), payload
