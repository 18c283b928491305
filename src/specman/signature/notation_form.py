"""Notation signatures as one of the forms the verifier looks for: find them, fetch the envelope, verify it.

The verification itself is ``specman.signature.notation.verify_notation_signature`` (notation's trust policy and
trust store); this module is the registry side, as notation-go's ``Verify`` does it: the referrers of the version
(the API, or the fallback tag) whose ``artifactType`` is ``application/vnd.cncf.notary.signature`` (older signers:
the same value as config media type, which the referrers index reports as ``artifactType``), at most
``MAX_ATTEMPTS`` of them (notation's ``MaxSignatureAttempts`` in Flux), each a manifest with exactly one envelope
layer (``application/jose+json`` or ``application/cose``) no larger than ``MAX_ENVELOPE_BYTES``.  The first one that
verifies wins; otherwise the first failure is the reason.  The subject's size and media type, which the payload must
match, come from one ``HEAD`` of the version's digest — made only when a notation signature exists.

A trust policy statement of level ``skip`` passes without verification, as notation lets the artifact through;
``audit`` passes once integrity holds (authenticity only logged), as notation does.
"""

from __future__ import annotations

from typing import Final

from specman.errors import ContentError, SignatureError
from specman.oci import Repository
from specman.oci.manifest import Descriptor
from specman.signature.notation import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    MAX_ENVELOPE_BYTES,
    SIGNATURE_ARTIFACT_TYPE,
    NotationError,
    NotationPolicy,
    NotationResult,
    verify_notation_signature,
)
from specman.signature.policy import ExtraVerifier, Referrers
from specman.signature.remote import read_blob
from specman.signature.result import Verified

__all__ = ["MAX_ATTEMPTS", "notation_verifier"]

MAX_ATTEMPTS: Final = 3


def _signer(result: NotationResult) -> str:
    if result.skipped:
        return f"not verified: trust policy {result.policy_name!r} has level skip"
    who = result.signer_subject or "?"
    return who if result.authentic else f"{who} (authenticity not enforced: level {result.level})"


def _verify_one(repo: Repository, desc: Descriptor, subject: Descriptor, policy: NotationPolicy) -> Verified:
    try:
        manifest = repo.fetch_manifest(desc.digest)
    except ContentError as exc:
        raise SignatureError(f"notation signature {desc.digest[:19]}: {exc}", reason="Malformed") from exc
    if manifest.subject is None or manifest.subject.digest != subject.digest:
        raise SignatureError("notation signature: its subject is not the version's manifest", reason="DigestMismatch")
    if len(manifest.layers) != 1 or manifest.layers[0].media_type not in (JWS_MEDIA_TYPE, COSE_MEDIA_TYPE):
        raise SignatureError("notation signature: expected exactly one JWS or COSE envelope layer", reason="Malformed")
    layer = manifest.layers[0]
    envelope = read_blob(repo, layer, f"notation envelope {layer.digest[:19]}", cap=MAX_ENVELOPE_BYTES)
    try:
        result = verify_notation_signature(
            envelope,
            media_type=layer.media_type,
            subject_digest=subject.digest,
            subject_size=subject.size,
            subject_media_type=subject.media_type,
            reference=f"{repo.display}@{subject.digest}",
            policy=policy,
        )
    except NotationError as exc:
        reason = "Notation" + exc.check[:1].upper() + exc.check[1:]
        raise SignatureError(f"notation: {exc}", reason=reason) from exc
    return Verified("notation", _signer(result), result.signer_fingerprint or policy.source)


def notation_verifier(policy: NotationPolicy) -> ExtraVerifier:
    """The notation form for ``VerifyPolicy.extra``."""

    def verify(repo: Repository, digest: str, referrers: Referrers) -> Verified | None:
        found = [d for d in referrers() if d.artifact_type == SIGNATURE_ARTIFACT_TYPE]
        if not found:
            return None
        subject = repo.resolve(digest)
        first: SignatureError | None = None
        for desc in found[:MAX_ATTEMPTS]:
            try:
                return _verify_one(repo, desc, subject, policy)
            except SignatureError as exc:
                first = first or exc
        assert first is not None
        raise first

    return verify
