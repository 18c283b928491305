"""Which tags and manifests are not versions: signatures, attestations, SBOMs and referrers attached to a version.

Three kinds of things live beside the manifests versions in a repository and must never be synced as versions:

* cosign's tags ``sha256-<hex>.sig`` (signatures), ``.att`` (attestations), ``.sbom`` (SBOMs), named after the
  manifest digest they belong to (sigstore/cosign ``pkg/oci/remote``);
* the OCI referrers fallback index tags ``<alg>-<hex>`` (distribution-spec "Referrers Tag Schema": the algorithm
  cut to 32 characters, the encoded digest to 64), which a client writes where the registry has no referrers API;
* manifests with a ``subject`` (OCI 1.1 referrers: a Sigstore bundle, a notation signature, an SBOM...) pushed
  under an ordinary tag name; they are only recognised once their manifest has been read (``referrer_kind``).

``classify_tag`` and ``split_tags`` work on names alone (no I/O); ``Attachment`` is what status shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from specman.oci.manifest import Manifest

__all__ = [
    "BUNDLE_ARTIFACT_TYPE",
    "NOTATION_ARTIFACT_TYPE",
    "Attachment",
    "artifact_kind",
    "classify_tag",
    "fallback_tag",
    "referrer_kind",
    "signature_tag",
    "split_tags",
]

_COSIGN_KINDS: Final = {"sig": "signature", "att": "attestation", "sbom": "sbom"}
_ATTACHED_TAG: Final = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(?:\.(sig|att|sbom))?$")
BUNDLE_ARTIFACT_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION_ARTIFACT_TYPE: Final = "application/vnd.cncf.notary.signature"
COSIGN_SIG_ARTIFACT_TYPE: Final = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass(frozen=True)
class Attachment:
    """Something attached to the manifest ``subject`` (a digest): found as ``tag`` (or as a referrer's digest)."""

    tag: str
    subject: str
    kind: str  # signature, attestation, sbom, referrers (a fallback index), or a referrer's kind
    digest: str | None = None  # the attached manifest's own digest, when known

    def to_json(self) -> dict[str, str]:
        out = {"tag": self.tag, "kind": self.kind}
        if self.digest:
            out["digest"] = self.digest
        return out


def classify_tag(tag: str) -> Attachment | None:
    """The attachment ``tag`` names (cosign ``.sig/.att/.sbom`` or a referrers fallback tag), or None for a version."""
    match = _ATTACHED_TAG.match(tag)
    if match is None:
        return None
    algorithm, encoded, suffix = match.groups()
    return Attachment(tag, f"{algorithm}:{encoded}", _COSIGN_KINDS[suffix] if suffix else "referrers")


def split_tags(tags: Iterable[str]) -> tuple[list[str], list[Attachment]]:
    """The version tags (in order) and the attachments among ``tags``."""
    versions: list[str] = []
    attached: list[Attachment] = []
    for tag in tags:
        found = classify_tag(tag)
        if found is None:
            versions.append(tag)
        else:
            attached.append(found)
    return versions, attached


def artifact_kind(artifact_type: str | None) -> str:
    """A readable kind for a referrer's ``artifactType``."""
    kind = (artifact_type or "").lower()
    if kind.startswith("application/vnd.dev.sigstore.bundle"):
        return "sigstore-bundle"
    if kind == NOTATION_ARTIFACT_TYPE:
        return "notation-signature"
    if kind == COSIGN_SIG_ARTIFACT_TYPE:
        return "signature"
    if "sbom" in kind or "spdx" in kind or "cyclonedx" in kind:
        return "sbom"
    if "in-toto" in kind or "attestation" in kind or "provenance" in kind:
        return "attestation"
    return "referrer"


def referrer_kind(manifest: Manifest) -> str | None:
    """For a manifest with a ``subject`` (an OCI 1.1 referrer), its kind; None for an ordinary manifest."""
    if manifest.subject is None:
        return None
    config_type = manifest.config.media_type if manifest.config is not None else None
    return artifact_kind(manifest.artifact_type or config_type)


def fallback_tag(digest: str) -> str:
    """The referrers fallback tag of ``digest`` (``sha256:abc…`` → ``sha256-abc…``)."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's tag for the signatures (``sig``), attestations (``att``) or SBOM (``sbom``) of ``digest``."""
    return digest.replace(":", "-") + "." + suffix
