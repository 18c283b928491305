"""The verification policy and the verifier that applies it, with results cached by manifest digest.

``VerifyPolicy`` is what ``--verify off|audit|required``, ``--verify-key FILE`` (repeatable) and ``--verify-tags GLOB``
(repeatable) say, or the same fields of the console's "Contains Spectro Manifests" registry:

* ``off`` (default): nothing is verified, as before;
* ``audit``: every version the policy covers is verified and the result reported (status, metrics, log), and it is
  published whatever the result;
* ``required``: a version is published only if a signature by one of the trusted keys verifies (any key passes:
  key rotation); otherwise the tag keeps the digest published before, if that one verified.

``tags`` (globs, ``fnmatch`` as ``--tags``) scopes the policy: tags outside it are published unverified.

``Verifier.verify`` looks for every form it knows, in order: cosign's legacy ``sha256-<hex>.sig`` tag (only when the
tag list holds it), Sigstore bundle referrers (referrers API, else the fallback tag, again only when listed), and
notation signatures when a notation trust policy is configured.  The first signature that verifies wins.  Results
are kept per manifest digest: a success for as long as the verifier lives (a version's bytes never change), a
failure until the signature tags of that digest change — a tag appears or disappears in the listing, or its
manifest digest changes (one ``HEAD`` per such tag: a signature appended to an existing ``.sig`` is seen at the
next sync) — or ``failure_ttl`` passes (referrers found through the API); a registry error is never kept.  So a
sync of unchanged signed tags asks the registry nothing more than it did without verification.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final

from specman.errors import ContentError, NotFoundError, SignatureError, SpecmanError, UsageError
from specman.oci import Repository
from specman.oci.manifest import Descriptor
from specman.signature.bundle import verify_bundle_manifest
from specman.signature.cosign import verify_legacy
from specman.signature.discovery import fallback_tag, signature_tag
from specman.signature.keys import PublicKey, load_public_key
from specman.signature.remote import ReferrersSupport, list_referrers
from specman.signature.result import Verification, Verified

__all__ = ["ExtraVerifier", "Mode", "PolicySpec", "Referrers", "Verifier", "VerifyPolicy"]

log = logging.getLogger("specman.signature")

#: At most this many referrers of one form are tried per version (a flood of referrers is not a reason to hang).
MAX_REFERRERS: Final = 16
#: (repository, digest, the digest's referrers (listed once, on first call)) -> a Verified, or None when this form is
#: not present; SignatureError when it is present and does not verify.
Referrers = Callable[[], list[Descriptor]]
ExtraVerifier = Callable[[Repository, str, Referrers], Verified | None]


class Mode(StrEnum):
    OFF = "off"
    AUDIT = "audit"
    REQUIRED = "required"


@dataclass(frozen=True)
class VerifyPolicy:
    """What to verify and with which keys (see the module docstring)."""

    mode: Mode = Mode.OFF
    keys: tuple[PublicKey, ...] = ()
    tags: tuple[str, ...] = ()
    extra: tuple[tuple[str, ExtraVerifier], ...] = ()  # other formats (notation): (name, verifier)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        if self.mode is not Mode.OFF and not self.keys and not self.extra:
            raise UsageError(f"--verify {self.mode} needs at least one --verify-key (a PEM public key)")

    @property
    def enabled(self) -> bool:
        return self.mode is not Mode.OFF

    def applies(self, tag: str) -> bool:
        """Does the policy cover ``tag``?"""
        return self.enabled and (not self.tags or any(fnmatch.fnmatchcase(tag, glob) for glob in self.tags))

    @property
    def formats(self) -> list[str]:
        return [*(["cosign", "sigstore-bundle"] if self.keys else []), *(name for name, _ in self.extra)]

    def describe(self) -> dict[str, object]:
        """The policy as status shows it (key fingerprints, never key material)."""
        return {
            "mode": str(self.mode),
            "tags": list(self.tags) or ["*"],
            "keys": [{"name": k.name, "fingerprint": k.fingerprint, "algorithm": k.algorithm} for k in self.keys],
            "formats": self.formats,
        }


class PolicyFieldError(UsageError):
    """A policy field of a console registry is wrong; ``field`` names it (``verify``, ``verifyKeys``...)."""

    def __init__(self, field: str, problem: str, *, prefixed: bool = False) -> None:
        super().__init__(problem if prefixed else f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class PolicySpec:
    """A policy as data (the console stores it with its "Contains Spectro Manifests" registry): the mode, trusted
    keys as PEM text, tag globs.  ``from_json`` checks everything (UsageError naming the field); ``policy`` builds it.
    """

    mode: str = "off"
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    MAX_KEYS: ClassVar[int] = 16

    @classmethod
    def from_json(cls, obj: object) -> PolicySpec:
        """The policy fields of a console registry; a ``PolicyFieldError`` names the field that is wrong."""
        if obj is None or obj == "":
            return cls()
        if not isinstance(obj, dict):
            raise PolicyFieldError("verify", "must be an object {verify, verifyKeys, verifyTags}")
        mode, keys, tags = obj.get("verify", "off"), obj.get("verifyKeys", []), obj.get("verifyTags", [])
        if mode not in [m.value for m in Mode]:
            raise PolicyFieldError("verify", f"{mode!r} is not one of off, audit, required")
        for name, value in (("verifyKeys", keys), ("verifyTags", tags)):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise PolicyFieldError(name, "must be a list of non-empty strings")
        if len(keys) > cls.MAX_KEYS:
            raise PolicyFieldError("verifyKeys", f"at most {cls.MAX_KEYS} keys")
        spec = cls(str(mode), tuple(keys), tuple(t.strip() for t in tags))
        try:
            spec.policy()  # every key must load, a mode other than off needs one
        except UsageError as exc:
            raise PolicyFieldError("verifyKeys", str(exc), prefixed=True) from None
        return spec

    def to_json(self) -> dict[str, object]:
        return {"verify": self.mode, "verifyKeys": list(self.keys), "verifyTags": list(self.tags)}

    def policy(self) -> VerifyPolicy:
        keys = tuple(load_public_key(pem.encode(), f"verifyKeys[{i}]") for i, pem in enumerate(self.keys))
        if self.mode == Mode.OFF:
            return VerifyPolicy()
        if not keys:
            raise UsageError(f"verifyKeys: verify {self.mode} needs at least one PEM public key")
        return VerifyPolicy(Mode(self.mode), keys, self.tags)


@dataclass
class _Entry:
    verification: Verification
    evidence: tuple[str, ...]
    expires: float | None


@dataclass
class Verifier:
    """Verifies manifest digests under ``policy``; thread-safe; one per policy (results are cached)."""

    policy: VerifyPolicy
    failure_ttl: float = 300.0
    support: ReferrersSupport = field(default_factory=ReferrersSupport)
    _cache: dict[str, _Entry] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cached(self, repo: Repository, digest: str, listed: Collection[str] | None) -> Verification | None:
        """The kept result for ``digest``, if it still holds."""
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None:
            return None
        if entry.verification.ok:
            return entry.verification
        if entry.expires is not None and time.monotonic() > entry.expires:
            return None
        try:
            return entry.verification if entry.evidence == _evidence(repo, digest, listed) else None
        except SpecmanError:
            return None

    def verify(
        self, repo: Repository, digest: str, *, listed: Collection[str] | None = None, manifest: bytes | None = None
    ) -> tuple[Verification, bool]:
        """The verification of ``digest`` and whether it came from the cache.  Never raises for bad signatures."""
        kept = self.cached(repo, digest, listed)
        if kept is not None:
            return kept, True
        outcome = self._verify(repo, digest, listed, manifest)
        if outcome.result != "error":
            try:
                evidence = () if outcome.ok else _evidence(repo, digest, listed)
            except SpecmanError:
                return outcome, False
            expires = None if outcome.ok else time.monotonic() + self.failure_ttl
            with self._lock:
                self._cache[digest] = _Entry(outcome, evidence, expires)
        return outcome, False

    def _verify(
        self, repo: Repository, digest: str, listed: Collection[str] | None, manifest: bytes | None
    ) -> Verification:
        failures: list[SignatureError] = []
        found: list[list[Descriptor]] = []

        def referrers() -> list[Descriptor]:  # one listing per verification, shared by the referrer forms
            if not found:
                found.append(list_referrers(repo, digest, self.support, listed=listed))
            return found[0]

        forms: list[Callable[[], Verified | None]] = [
            lambda: self._legacy(repo, digest, listed),
            lambda: self._bundles(repo, digest, referrers, manifest),
        ]
        forms += [functools.partial(verifier, repo, digest, referrers) for _, verifier in self.policy.extra]
        try:
            for form in forms:
                try:
                    verified = form()
                except SignatureError as exc:
                    failures.append(exc)
                    continue
                if verified is not None:
                    return Verification.success(digest, verified)
        except SpecmanError as exc:
            return Verification.failure(digest, "error", "VerificationError", f"cannot check signatures: {exc}")
        if not failures:
            names = {"cosign": signature_tag(digest), "sigstore-bundle": "Sigstore bundle referrers"}
            where = ", ".join(names.get(f, f"{f} referrers") for f in self.policy.formats)
            return Verification.failure(digest, "unsigned", "Unsigned", f"no signature found (looked for {where})")
        first = failures[0]
        return Verification.failure(digest, "invalid", first.reason, str(first))

    def _legacy(self, repo: Repository, digest: str, listed: Collection[str] | None) -> Verified | None:
        tag = signature_tag(digest)
        if not self.policy.keys or (listed is not None and tag not in listed):
            return None
        try:
            sig_manifest = repo.fetch_manifest(tag)
        except NotFoundError:
            return None
        except ContentError as exc:  # too large, not JSON, not a manifest: the signature is unusable, not absent
            raise SignatureError(f"{tag}: {exc}", reason="Malformed") from exc
        return verify_legacy(repo, digest, self.policy.keys, sig_manifest)

    def _bundles(self, repo: Repository, digest: str, referrers: Referrers, manifest: bytes | None) -> Verified | None:
        if not self.policy.keys:
            return None
        found = [d for d in referrers() if (d.artifact_type or "").startswith("application/vnd.dev.sigstore.bundle")]
        first: SignatureError | None = None
        for desc in found[:MAX_REFERRERS]:
            try:
                try:
                    referrer = repo.fetch_manifest(desc.digest)
                except ContentError as exc:
                    raise SignatureError(f"bundle referrer {desc.digest[:19]}: {exc}", reason="Malformed") from exc
                return verify_bundle_manifest(repo, referrer, digest, self.policy.keys, manifest)
            except SignatureError as exc:
                first = first or exc
        if first is not None:
            raise first
        return None


def _evidence(repo: Repository, digest: str, listed: Collection[str] | None) -> tuple[str, ...]:
    """The tags that could hold signatures of ``digest`` and their digests: when they change, a failure is stale."""
    found: list[str] = []
    for tag in (signature_tag(digest), fallback_tag(digest)):
        if listed is not None and tag not in listed:
            continue
        try:
            found.append(f"{tag}@{repo.resolve(tag).digest}")
        except NotFoundError:
            continue
    return tuple(found)


def trusted_keys_line(keys: Sequence[PublicKey]) -> str:
    return ", ".join(f"{k.name} ({k.algorithm}, {k.fingerprint[:19]}…)" for k in keys)
