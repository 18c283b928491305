"""What verifying one version found: ``Verified`` (one good signature) and ``Verification`` (the outcome per version).

``Verification.to_json`` is the shape ``/_specman/status``, the status page and ``sync.json`` show per tag::

    {"result": "verified", "reason": "Verified", "format": "cosign", "signer": "sha256:<key fingerprint>",
     "key": "/keys/k.pub", "verified_at": "2026-12-06T14:00:00Z", "message": "...", "digest": "sha256:..."}

``result`` is one of ``verified``, ``unsigned`` (no signature of a known form), ``invalid`` (signatures exist but
none verifies with a trusted key, or they are malformed) and ``error`` (the registry could not be asked); the
Prometheus counter ``specman_verification_total{result}`` uses the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["RESULTS", "Verification", "Verified"]

RESULTS: Final = ("verified", "unsigned", "invalid", "error")


@dataclass(frozen=True)
class Verified:
    """One signature that verified: its ``format`` and who signed (key fingerprint or certificate subject)."""

    format: str  # cosign, sigstore-bundle, notation
    signer: str
    key: str = ""  # the trusted key's file name, or the trust store entry


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying the manifest ``digest`` (``reason`` CamelCase, ``message`` one line)."""

    digest: str
    result: str
    reason: str
    message: str
    checked_at: datetime
    verified: Verified | None = None

    @property
    def ok(self) -> bool:
        return self.result == "verified"

    @classmethod
    def success(cls, digest: str, verified: Verified) -> Verification:
        message = f"signed ({verified.format}) by {verified.signer}"
        return cls(digest, "verified", "Verified", message, datetime.now(UTC), verified)

    @classmethod
    def failure(cls, digest: str, result: str, reason: str, message: str) -> Verification:
        return cls(digest, result, reason, message, datetime.now(UTC))

    def to_json(self) -> dict[str, str]:
        out = {
            "digest": self.digest,
            "result": self.result,
            "reason": self.reason,
            "message": self.message,
            "checked_at": self.checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.verified is not None:
            out.update(format=self.verified.format, signer=self.verified.signer, key=self.verified.key)
            out["verified_at"] = out["checked_at"]
        return out
