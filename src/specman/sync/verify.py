"""The reconcile steps about signatures: set attachments apart, read new manifests, verify before fetching.

``classify_tags`` (after ``list_tags``) moves cosign's ``.sig/.att/.sbom`` tags and referrers fallback tags out of
the version list (``specman.signature.discovery``): they are never selected, fetched, failed or served, and
``SyncResult.attached`` lists them under the digest they belong to.

``inspect_manifests`` (after ``resolve_digests``) reads the manifest of each new version once — the request
``fetch_versions`` made anyway, now made earlier and its result handed on — and sets apart manifests with a
``subject`` (OCI 1.1 referrers pushed under an ordinary tag).

``verify_signatures`` applies the ``VerifyPolicy`` (``specman.signature.policy``) to every selected tag it covers:
``audit`` logs and publishes anyway; ``required`` fails the tag (it is not fetched) and keeps its published digest
only if that one verifies too — otherwise the tag is withheld from the new generation.  Results come from the
verifier's cache when the digest was verified before, so a sync of unchanged tags makes no extra request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from specman.errors import SignatureError, SpecmanError
from specman.oci import resolve_image_manifest
from specman.signature.discovery import Attachment, referrer_kind, split_tags
from specman.signature.policy import Mode
from specman.signature.result import Verification

if TYPE_CHECKING:
    from specman.oci.manifest import Manifest
    from specman.sync.reconcile import SyncState

__all__ = ["classify_tags", "inspect_manifests", "verify_signatures"]

log = logging.getLogger("specman.sync")


def classify_tags(state: SyncState) -> None:
    """Keep only version tags in ``listed``; signature, attestation, SBOM and referrers tags go to ``attached``."""
    state.all_tags = list(state.listed)
    state.listed, attached = split_tags(state.listed)
    state.attached.extend(attached)
    if attached:
        kinds = sorted({a.kind for a in attached})
        log.info("Tags that are not versions", extra={"fields": {"count": len(attached), "kinds": " ".join(kinds)}})


def inspect_manifests(state: SyncState) -> None:
    """Read each new version's manifest (handed to ``fetch_versions``); referrers are set apart, never fetched."""

    def read(tag: str) -> Manifest:
        return resolve_image_manifest(state.source, state.digests[tag])

    outcomes = state.map(read, list(state.new))
    for tag, outcome in zip(list(state.new), outcomes, strict=True):
        if isinstance(outcome, SpecmanError):
            continue  # fetch_versions asks again and reports the failure where it always did
        kind = referrer_kind(outcome)
        if kind is None:
            state.manifests[tag] = outcome
            continue
        subject = outcome.subject.digest if outcome.subject else ""
        state.attached.append(Attachment(tag, subject, kind, state.digests[tag]))
        state.new.remove(tag)
        state.selected.remove(tag)
        log.info(f"Not a version: {tag}", extra={"fields": {"kind": kind, "subject": subject}})


def _check(state: SyncState, tag: str, digest: str, listed: frozenset[str]) -> tuple[Verification, bool]:
    """(the verification of ``digest``, whether it was made now); runs on the reconcile's threads."""
    assert state.verifier is not None
    manifest = state.manifests.get(tag)
    raw = manifest.raw if manifest is not None and manifest.digest == digest else None
    verification, cached = state.verifier.verify(state.source, digest, listed=listed, manifest=raw)
    if not cached and verification.ok:
        fields = {"tag": tag, "digest": digest, "result": verification.result, "signer": verification.message}
        log.info(f"Verified {tag}", extra={"fields": fields})
    return verification, not cached


def _count(state: SyncState, outcome: tuple[Verification, bool]) -> Verification:
    """Count a verification made now (not a kept one) for ``specman_verification_total``; on the reconcile's thread."""
    verification, made = outcome
    if made:
        state.verification_counts[verification.result] = state.verification_counts.get(verification.result, 0) + 1
    return verification


def verify_signatures(state: SyncState) -> None:
    """Verify the covered tags (see the module docstring); ``required`` failures keep or withhold the old digest."""
    if state.verifier is None or not state.verifier.policy.enabled:
        return
    policy = state.verifier.policy
    covered = [t for t in state.selected if t in state.digests and t not in state.failed and policy.applies(t)]
    listed = state.tag_set
    outcomes = state.map(lambda tag: _check(state, tag, state.digests[tag], listed), covered)
    published = state.store.current()
    before = published.digests() if published else {}
    for tag, outcome in zip(covered, outcomes, strict=True):
        if isinstance(outcome, SpecmanError):  # not expected (the verifier reports errors as results)
            error = Verification.failure(state.digests[tag], "error", "VerificationError", str(outcome))
            outcome = (error, True)
        verification = _count(state, outcome)
        state.verifications[tag] = verification
        if verification.ok:
            continue
        fields = {
            "tag": tag,
            "digest": verification.digest,
            "result": verification.result,
            "reason": verification.reason,
        }
        if policy.mode is Mode.AUDIT:
            log.warning(
                f"Signature check failed for {tag} (audit: published anyway): {verification.message}",
                extra={"fields": fields},
            )
            continue
        _refuse(state, tag, verification, before.get(tag), listed)


def _refuse(state: SyncState, tag: str, verification: Verification, old: str | None, listed: frozenset[str]) -> None:
    """``required``: the tag fails (not fetched); it keeps its published digest ``old`` only if that one verifies."""
    message = f"signature check failed: {verification.message}"
    state.fail_tag(tag, SignatureError(message, reason=verification.reason))
    if tag in state.new:
        state.new.remove(tag)
    if old is None:
        return
    previous = _count(state, _check(state, tag, old, listed)) if old != verification.digest else None
    if previous is not None:
        state.previous[tag] = previous
    if previous is None or not previous.ok:
        state.withheld.add(tag)
        fields = {"tag": tag, "digest": old, "reason": verification.reason}
        log.warning(f"Withholding {tag}: its published digest is not verified either", extra={"fields": fields})
