"""Signing a version with a local key, in either of the forms cosign reads, and checking one reference.

``sign_reference`` resolves the reference to its manifest digest (what is signed is always a digest, never a tag)
and writes either cosign's legacy signature (``sha256-<hex>.sig``, the default) or a Sigstore bundle attached as an
OCI 1.1 referrer (``bundle=True``; through the referrers API, or the fallback tag where the registry has none).
``verify_reference`` is ``specman pull --verify-key``: one digest, every form, SignatureError when none verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from specman.errors import SignatureError
from specman.oci import Repository
from specman.oci.manifest import OCI_MANIFEST, Descriptor
from specman.signature.bundle import sign_bundle
from specman.signature.cosign import sign_legacy
from specman.signature.discovery import fallback_tag, signature_tag
from specman.signature.keys import PrivateKey, PublicKey
from specman.signature.policy import Mode, Verifier, VerifyPolicy
from specman.signature.remote import push_referrer
from specman.signature.result import Verification

__all__ = ["SignResult", "sign_descriptor", "sign_reference", "verify_reference"]


@dataclass(frozen=True)
class SignResult:
    """What ``sign_reference`` wrote: the signed ``digest``, the ``format`` and where (``location``)."""

    digest: str
    format: str  # cosign (legacy .sig tag) or sigstore-bundle
    location: str  # the .sig tag, or the referrer's digest
    signature_digest: str


def sign_descriptor(
    repo: Repository,
    subject: Descriptor,
    key: PrivateKey,
    *,
    reference: str,
    bundle: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> SignResult:
    """Sign the manifest ``subject`` of ``repo`` (``reference`` is the name written into a legacy payload)."""
    if bundle:
        manifest, _ = sign_bundle(repo, subject, key)
        digest = push_referrer(repo, manifest, OCI_MANIFEST, subject.digest)
        return SignResult(subject.digest, "sigstore-bundle", fallback_tag(subject.digest), digest)
    sig_digest, _ = sign_legacy(repo, subject.digest, reference, key, annotations=annotations)
    return SignResult(subject.digest, "cosign", signature_tag(subject.digest), sig_digest)


def sign_reference(
    repo: Repository,
    ref: str,
    key: PrivateKey,
    *,
    bundle: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> SignResult:
    """Resolve ``ref`` (a tag or digest of ``repo``) and sign its manifest digest."""
    subject = repo.resolve(ref)
    if not subject.media_type:
        subject = repo.fetch_manifest(subject.digest).descriptor
    return sign_descriptor(repo, subject, key, reference=f"{repo.display}", bundle=bundle, annotations=annotations)


def verify_reference(repo: Repository, digest: str, keys: Sequence[PublicKey]) -> Verification:
    """Verify the manifest ``digest`` with ``keys``; SignatureError (with the reason) unless a signature verifies."""
    verification, _ = Verifier(VerifyPolicy(Mode.REQUIRED, tuple(keys))).verify(repo, digest)
    if not verification.ok:
        raise SignatureError(f"{repo.display}@{digest}: {verification.message}", reason=verification.reason)
    return verification
