"""Verifying a Notation (Notary Project) signature of an OCI manifest against notation's trust policy and trust store.

A pure library: no network, no registry access. The caller finds the signature (a referrer manifest of
``artifactType`` :data:`SIGNATURE_ARTIFACT_TYPE`, or older signers' config ``mediaType`` of the same value, whose
``subject`` is the signed manifest and whose single layer is the envelope), checks that layer's size against
:data:`MAX_ENVELOPE_BYTES` before downloading it, and passes the envelope bytes here with the layer's media type.

Wiring::

    policy = load_notation_policy("/etc/notation/trustpolicy.json", "/etc/notation/truststore")  # once, at start
    try:
        result = verify_notation_signature(
            layer_bytes, media_type=layer.media_type,                       # "application/jose+json"
            subject_digest=manifest_digest, subject_size=len(manifest_bytes),
            subject_media_type=manifest_media_type,                         # as served by the registry
            reference=f"{host}/{repository}@{manifest_digest}", policy=policy)
    except NotationError as exc:  # exc.check: envelope, integrity, authenticity, authenticTimestamp, expiry,
        ...                       # revocation, policy; str(exc) is the one-line reason for status and logs
    # result.skipped: the policy says "skip" (nothing was verified); result.authentic: trust store and identity held
    # (False only where the level merely logs authenticity: audit); result.warnings: failures the level only logged.

Steps (notaryproject/specifications ``specs/trust-store-trust-policy.md`` "Signature Verification"; notation-go
``verifier/verifier.go``): pick the statement of the trust policy for ``reference`` → ``skip`` returns at once →
integrity, always enforced (envelope rules, certificate requirements, signature, and the payload's
``targetArtifact`` equal to the subject's digest, size and media type) → authenticity (some chain certificate
is in a trust store of the statement: ``ca`` stores for ``notary.x509``, ``signingAuthority`` stores for
``notary.x509.signingAuthority``; then the leaf subject matches a trusted identity) → expiry
(``io.cncf.notary.expiry`` later than now) → authentic timestamp → revocation. Each failure after integrity is
enforced (raises) or logged (kept in ``warnings``, logged on ``specman.signature``) as the level says.

Several signatures on one manifest: verify each (notation CLI tries up to 100 by default, Flux up to 3)
and take the first that returns; report the last error when none does. ``NotationPolicy`` is immutable and safe to
share between threads; reload by calling :func:`load_notation_policy` again. :class:`NotationError` is defined in
``notation_policy`` (it derives from ``specman.errors.ContentError``) and re-exported here.

Modules: ``notation_policy`` (trust policy document, levels, scopes), ``notation_identity`` (``x509.subject``
identities), ``notation_truststore`` (the ``x509/{ca,signingAuthority,tsa}/NAME`` directory),
``notation_envelope`` (JWS parsing and signature, joserfc), ``notation_chain`` (certificate requirements, validity,
offline revocation), this module (the verification steps and the public API).

Authentic timestamp: under ``notary.x509.signingAuthority`` every certificate must be valid at the authentic
signing time. Under ``notary.x509`` every certificate must be valid now and (as the signature specification
demands of every chain, and as notation checks when it signs) at the claimed signing time. RFC 3161 timestamp
countersignatures are not verified by specman: a statement with a ``tsa:`` store whose ``verifyTimestamp`` asks
for one (``always``, or ``afterCertExpiry`` once a certificate has expired) fails the authentic-timestamp check
with that reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from specman.signature.notation_chain import invalid_at, is_trusted, revocation_unknown
from specman.signature.notation_envelope import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    MAX_ENVELOPE_BYTES,
    SCHEME_X509_SIGNING_AUTHORITY,
    JwsEnvelope,
    verify_jws,
)
from specman.signature.notation_identity import certificate_subject_attributes, identity_matches
from specman.signature.notation_policy import (
    LEVELS,
    Action,
    NotationError,
    TrustPolicyDocument,
    TrustPolicyStatement,
    parse_trust_policy,
)
from specman.signature.notation_truststore import TrustStore, load_trust_store

__all__ = [
    "COSE_MEDIA_TYPE",
    "JWS_MEDIA_TYPE",
    "MAX_ENVELOPE_BYTES",
    "SIGNATURE_ARTIFACT_TYPE",
    "NotationError",
    "NotationPolicy",
    "NotationResult",
    "load_notation_policy",
    "parse_notation_policy",
    "verify_notation_signature",
]

SIGNATURE_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
log = logging.getLogger("specman.signature")


@dataclass(frozen=True)
class NotationPolicy:
    """A validated trust policy with the certificates of every trust store it names (read once)."""

    document: TrustPolicyDocument
    trust_store: TrustStore
    source: str


@dataclass(frozen=True)
class NotationResult:
    """What a verification established.

    ``level`` is the statement's level (``strict``, ``permissive``, ``audit``, ``skip``); ``overridden`` is True when
    its ``override`` changed an action. Signer fields are ``None`` only when ``skipped``. ``signer_subject`` is the
    leaf's RFC 4514 subject, ``signer_fingerprint`` the sha256 hex of its DER (notation's
    ``io.cncf.notary.x509chain.thumbprint#S256`` entry), ``signing_time`` the (authentic) signing time.
    """

    level: str
    policy_name: str
    overridden: bool = False
    skipped: bool = False
    authentic: bool = False
    signer_subject: str | None = None
    signer_fingerprint: str | None = None
    signing_scheme: str | None = None
    signing_time: datetime | None = None
    expiry: datetime | None = None
    signing_agent: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def parse_notation_policy(data: bytes, trust_store_dir: str | os.PathLike[str], *, source: str) -> NotationPolicy:
    """A policy from trust policy bytes (``source`` names them in messages) and a trust store directory."""
    document = parse_trust_policy(data, source)
    wanted = [store for statement in document.statements for store in statement.trust_stores]
    return NotationPolicy(document, load_trust_store(Path(trust_store_dir), wanted), source)


def load_notation_policy(
    trust_policy_file: str | os.PathLike[str], trust_store_dir: str | os.PathLike[str]
) -> NotationPolicy:
    """Read ``trustpolicy.json`` and the trust stores it names; raises :class:`NotationError` (``check`` ``policy``
    or ``truststore``) with a one-line reason. ``trust_policy_file`` may also be a notation config directory
    (``trustpolicy.oci.json``, else ``trustpolicy.json``, inside); ``trust_store_dir`` is the directory holding
    ``x509/`` or its parent config directory.
    """
    path = Path(trust_policy_file)
    if path.is_dir():
        candidates = [path / "trustpolicy.oci.json", path / "trustpolicy.json"]
        path = next((candidate for candidate in candidates if candidate.is_file()), candidates[-1])
    try:
        with path.open("rb") as handle:
            data = handle.read(2 * 1024 * 1024)
    except OSError as exc:
        raise NotationError(f"cannot read trust policy {path}: {exc.strerror}", check="policy") from None
    return parse_notation_policy(data, trust_store_dir, source=str(path))


def verify_notation_signature(
    envelope: bytes,
    *,
    media_type: str,
    subject_digest: str,
    subject_size: int,
    subject_media_type: str,
    reference: str,
    policy: NotationPolicy,
    now: datetime | None = None,
) -> NotationResult:
    """Verify one notation signature envelope of the manifest ``subject_*`` named by ``reference``.

    ``reference`` is ``host[:port]/repository`` with an optional ``:tag`` or ``@digest``; it selects the trust
    policy statement by ``registryScopes``. ``now`` (timezone-aware) defaults to the current time. Returns a
    :class:`NotationResult`, or raises :class:`NotationError` with the first enforced failure.
    """
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    moment = moment.astimezone(UTC)
    statement = policy.document.select(reference)
    overridden = dict(statement.actions) != dict(LEVELS[statement.level])
    if statement.level == "skip":
        return NotationResult(level="skip", policy_name=statement.name, skipped=True)
    parsed = verify_jws(envelope, media_type)
    target = parsed.target
    if (target.digest, target.size, target.media_type) != (subject_digest, subject_size, subject_media_type):
        raise NotationError(
            f"the signature is for {target.digest} ({target.media_type}, {target.size} bytes), "
            f"not for {subject_digest} ({subject_media_type}, {subject_size} bytes)",
            check="integrity",
        )
    warnings: list[str] = []
    authentic = _apply(statement, "authenticity", _authenticity(parsed, statement, policy.trust_store), warnings)
    authentic = _apply(statement, "authenticity", _identity(parsed, statement), warnings) and authentic
    expired = parsed.expiry is not None and moment >= parsed.expiry
    expiry_reason = f"the signature expired at {parsed.expiry:%Y-%m-%dT%H:%M:%SZ}" if expired else None
    _apply(statement, "expiry", expiry_reason, warnings)
    _apply(statement, "authenticTimestamp", _authentic_timestamp(parsed, statement, moment), warnings)
    if statement.action("revocation") is not Action.SKIP:
        _apply(statement, "revocation", revocation_unknown(parsed.chain), warnings)
    leaf = parsed.chain[0]
    return NotationResult(
        level=statement.level,
        policy_name=statement.name,
        overridden=overridden,
        authentic=authentic,
        signer_subject=leaf.subject.rfc4514_string(),
        signer_fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        signing_scheme=parsed.signing_scheme,
        signing_time=parsed.signing_time,
        expiry=parsed.expiry,
        signing_agent=parsed.signing_agent,
        warnings=tuple(warnings),
    )


_HINTS = {
    "revocation": 'specman checks revocation offline; "override": {"revocation": "log"} or "skip" in the trust '
    "policy statement accepts certificates that name CRL/OCSP servers",
}


def _apply(statement: TrustPolicyStatement, check: str, reason: str | None, warnings: list[str]) -> bool:
    """Enforce or log the failure ``reason`` of ``check``; True when the check passed."""
    if reason is None:
        return True
    action = statement.action(check)
    if action is Action.ENFORCE:
        raise NotationError(f"{check}: {reason}", check=check, hint=_HINTS.get(check))
    if action is Action.LOG:
        warnings.append(f"{check}: {reason}")
        log.warning("notation %s validation failed, logged as trust policy %r says: %s", check, statement.name, reason)
    return False


def _authenticity(parsed: JwsEnvelope, statement: TrustPolicyStatement, store: TrustStore) -> str | None:
    store_type = "signingAuthority" if parsed.signing_scheme == SCHEME_X509_SIGNING_AUTHORITY else "ca"
    names = statement.stores_of(store_type)
    if not names:
        return f"trust policy {statement.name!r} names no {store_type} trust store for scheme {parsed.signing_scheme}"
    if not is_trusted(parsed.chain, store.certificates(store_type, names)):
        stores = ", ".join(f"{store_type}:{name}" for name in names)
        return (
            f"the certificate chain of {parsed.chain[0].subject.rfc4514_string()!r} leads to no certificate of {stores}"
        )
    return None


def _identity(parsed: JwsEnvelope, statement: TrustPolicyStatement) -> str | None:
    if statement.any_identity:
        return None
    if not statement.identities:
        return f"trust policy {statement.name!r} has no x509.subject trusted identity"
    leaf = parsed.chain[0]
    subject = certificate_subject_attributes(leaf)
    if subject is not None and any(identity_matches(identity, subject) for identity in statement.identities):
        return None
    return f"signer {leaf.subject.rfc4514_string()!r} matches no trusted identity of trust policy {statement.name!r}"


def _authentic_timestamp(parsed: JwsEnvelope, statement: TrustPolicyStatement, moment: datetime) -> str | None:
    if parsed.signing_scheme == SCHEME_X509_SIGNING_AUTHORITY:
        return invalid_at(parsed.chain, parsed.signing_time, "the authentic signing time")
    if statement.stores_of("tsa"):
        expired = any(moment > certificate.not_valid_after_utc for certificate in parsed.chain)
        if statement.verify_timestamp == "always" or expired:
            if parsed.timestamp_signature is None:
                return "no timestamp countersignature was found in the signature envelope"
            return "the trust policy requires an RFC 3161 timestamp check, which specman does not perform"
    return invalid_at(parsed.chain, moment, "now") or invalid_at(parsed.chain, parsed.signing_time, "the signing time")
