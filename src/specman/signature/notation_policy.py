"""Notation's trust policy (``trustpolicy.json``, ``trustpolicy.oci.json``; version ``1.0``), read as notation does.

The file format and rules are those of notaryproject/specifications ``specs/trust-store-trust-policy.md`` as
implemented by notation-go ``verifier/trustpolicy`` (``trustpolicy.go``, ``oci.go``) and ``internal/pkix``::

    {"version": "1.0",
     "trustPolicies": [{"name": "prod",
                        "registryScopes": ["registry.example.com/spectro-packs/spectro-manifests/manifest"],
                        "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
                        "trustStores": ["ca:prod"],
                        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=release"]}]}

* ``level`` names a verification level; each level says, per validation, whether a failure is *enforced* (the
  signature is rejected) or only *logged* (:data:`LEVELS`, the table of the specification). ``override`` changes the
  action of ``authenticity``, ``authenticTimestamp`` and ``expiry`` (``enforce``/``log``) and ``revocation`` (also
  ``skip``); ``integrity`` cannot be overridden and ``skip`` cannot be customised.
* A ``skip`` statement has no trust stores and no identities; any other has both. Trust stores are
  ``ca:NAME``, ``signingAuthority:NAME`` or ``tsa:NAME`` with NAME in ``[A-Za-z0-9_.-]+``.
* ``trustedIdentities`` is ``["*"]`` or ``x509.subject: DN`` entries (RFC 4514 distinguished names that must hold
  ``C``, ``ST`` (or ``S``) and ``O``; no multi-valued RDNs, no ``=#`` hex values, no two entries that one
  certificate could both match). Identities of another type (``prefix: value``) are accepted and ignored, as
  notation does for plugin-defined identities.
* ``registryScopes`` are fully qualified repositories (``host[:port]/path``) or the single global ``*``; a scope may
  appear in one statement only, ``*`` stands alone. An artifact takes the statement naming its repository exactly,
  else the global one, else verification fails. Like notation-go (and unlike the prose of the specification),
  a global ``skip`` statement is accepted: it is the operator's explicit choice.

Distinguished names are parsed and matched in :mod:`specman.signature.notation_identity`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from specman.errors import ContentError
from specman.signature.notation_identity import identity_matches, parse_distinguished_name

__all__ = [
    "CHECKS",
    "LEVELS",
    "Action",
    "NotationError",
    "TrustPolicyDocument",
    "TrustPolicyStatement",
    "parse_trust_policy",
    "repository_of",
]

#: Refuse trust policy files larger than this (real ones are a few KiB).
MAX_POLICY_BYTES = 1024 * 1024


class NotationError(ContentError):
    """A notation signature, trust policy or trust store is not acceptable; ``str()`` is one line.

    ``check`` names what failed: ``envelope`` (malformed or unsupported envelope), one of :data:`CHECKS`
    (``integrity``, ``authenticity``, ``authenticTimestamp``, ``expiry``, ``revocation``), ``policy`` (the trust
    policy file, or no statement applies) or ``truststore``. Callers branch on ``check``, never on the message.
    ``kind`` is ``NotationError``; never ``retryable`` (the same bytes and policy give the same answer).
    """

    kind = "NotationError"

    def __init__(self, message: str, *, check: str = "envelope", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.check = check


class Action(enum.StrEnum):
    """What a failed validation does at a level."""

    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


#: The validations of notation's verification, in the order notation-go runs them after integrity.
CHECKS = ("integrity", "authenticity", "authenticTimestamp", "expiry", "revocation")

_E, _L, _S = Action.ENFORCE, Action.LOG, Action.SKIP
#: The verification levels table of trust-store-trust-policy.md ("Signature Verification details").
LEVELS: Mapping[str, Mapping[str, Action]] = MappingProxyType(
    {
        "strict": MappingProxyType(dict(zip(CHECKS, (_E, _E, _E, _E, _E), strict=True))),
        "permissive": MappingProxyType(dict(zip(CHECKS, (_E, _E, _L, _L, _L), strict=True))),
        "audit": MappingProxyType(dict(zip(CHECKS, (_E, _L, _L, _L, _L), strict=True))),
        "skip": MappingProxyType(dict(zip(CHECKS, (_S, _S, _S, _S, _S), strict=True))),
    }
)
_TRUST_STORE_TYPES = ("ca", "signingAuthority", "tsa")
_STORE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?"
    r"(?::[0-9]+)?"
)
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?"
)
_X509_SUBJECT = "x509.subject"


@dataclass(frozen=True)
class TrustPolicyStatement:
    """One statement of ``trustPolicies``, validated."""

    name: str
    registry_scopes: tuple[str, ...]
    level: str
    actions: Mapping[str, Action]
    verify_timestamp: str
    trust_stores: tuple[tuple[str, str], ...]
    any_identity: bool
    identities: tuple[Mapping[str, str], ...]

    def action(self, check: str) -> Action:
        """The action for a failure of ``check`` (one of :data:`CHECKS`)."""
        return self.actions[check]

    def stores_of(self, store_type: str) -> tuple[str, ...]:
        """Names of this statement's trust stores of ``store_type`` (``ca``, ``signingAuthority``, ``tsa``)."""
        return tuple(name for kind, name in self.trust_stores if kind == store_type)


@dataclass(frozen=True)
class TrustPolicyDocument:
    """A validated trust policy document."""

    statements: tuple[TrustPolicyStatement, ...]

    def select(self, reference: str) -> TrustPolicyStatement:
        """The statement for ``reference``: exact repository scope, else ``*``, else :class:`NotationError`."""
        repository = repository_of(reference)
        glob: TrustPolicyStatement | None = None
        for statement in self.statements:
            if repository in statement.registry_scopes:
                return statement
            if statement.registry_scopes == ("*",):
                glob = statement
        if glob is None:
            raise NotationError(f"no notation trust policy statement applies to {repository}", check="policy")
        return glob


def repository_of(reference: str) -> str:
    """``host[:port]/path`` of ``reference`` (``…@digest`` or ``…:tag`` removed), validated as a registry scope."""
    repository = reference.split("@", 1)[0]
    head, slash, last = repository.rpartition("/")
    if slash and ":" in last:
        repository = f"{head}/{last.split(':', 1)[0]}"
    _check_scope(repository, what="artifact reference")
    return repository


def parse_trust_policy(data: bytes, source: str) -> TrustPolicyDocument:
    """Validate a trust policy document as notation does; ``source`` names the file in error messages."""
    if len(data) > MAX_POLICY_BYTES:
        raise NotationError(f"trust policy {source} is larger than {MAX_POLICY_BYTES} bytes", check="policy")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotationError(f"trust policy {source} is not valid JSON: {exc}", check="policy") from None
    if not isinstance(doc, dict):
        raise NotationError(f"trust policy {source} is not a JSON object", check="policy")
    if doc.get("version") != "1.0":
        raise NotationError(
            f"trust policy {source} has version {doc.get('version')!r}; notation supports '1.0'", check="policy"
        )
    raw = doc.get("trustPolicies")
    if not isinstance(raw, list) or not raw:
        raise NotationError(f"trust policy {source} has no trustPolicies statements", check="policy")
    statements = tuple(_statement(item, source) for item in raw)
    names = [statement.name for statement in statements]
    for name in names:
        if names.count(name) > 1:
            raise NotationError(f"trust policy {source} has two statements named {name!r}", check="policy")
    scopes = [scope for statement in statements for scope in statement.registry_scopes]
    for scope in scopes:
        if scopes.count(scope) > 1:
            raise NotationError(
                f"trust policy {source}: registry scope {scope!r} is in several statements", check="policy"
            )
    return TrustPolicyDocument(statements)


def _fail(source: str, name: str, reason: str) -> NotationError:
    return NotationError(f"trust policy {source}, statement {name!r}: {reason}", check="policy")


def _strings(value: Any, source: str, name: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(source, name, f"{field} must be a list of strings")
    return tuple(value)


def _statement(item: Any, source: str) -> TrustPolicyStatement:
    if not isinstance(item, dict):
        raise NotationError(f"trust policy {source}: a statement is not a JSON object", check="policy")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise NotationError(f"trust policy {source}: a statement has no name", check="policy")
    verification = item.get("signatureVerification")
    if not isinstance(verification, dict):
        raise _fail(source, name, "signatureVerification is missing")
    level, actions = _level(verification, source, name)
    verify_timestamp = verification.get("verifyTimestamp") or "always"
    if verify_timestamp not in ("always", "afterCertExpiry"):
        raise _fail(source, name, f"verifyTimestamp must be 'always' or 'afterCertExpiry', not {verify_timestamp!r}")
    scopes = _strings(item.get("registryScopes"), source, name, "registryScopes")
    if not scopes:
        raise _fail(source, name, "registryScopes must name at least one repository or '*'")
    if "*" in scopes and len(scopes) > 1:
        raise _fail(source, name, "the global scope '*' cannot be combined with other scopes")
    for scope in scopes:
        if scope != "*":
            _check_scope(scope, what=f"trust policy {source}, statement {name!r}: registry scope")
    stores = _strings(item.get("trustStores"), source, name, "trustStores")
    identities = _strings(item.get("trustedIdentities"), source, name, "trustedIdentities")
    if level == "skip" and (stores or identities):
        raise _fail(source, name, "level 'skip' takes no trustStores or trustedIdentities")
    if level != "skip" and not (stores and identities):
        raise _fail(source, name, "trustStores and trustedIdentities are both required")
    any_identity, parsed = _identities(identities, source, name)
    return TrustPolicyStatement(
        name=name,
        registry_scopes=scopes,
        level=level,
        actions=actions,
        verify_timestamp=verify_timestamp,
        trust_stores=tuple(_store(store, source, name) for store in stores),
        any_identity=any_identity,
        identities=parsed,
    )


def _level(verification: dict[str, Any], source: str, name: str) -> tuple[str, Mapping[str, Action]]:
    level = verification.get("level")
    if not isinstance(level, str) or level not in LEVELS:
        raise _fail(source, name, f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    override = verification.get("override") or {}
    if not isinstance(override, dict):
        raise _fail(source, name, "override must be a JSON object")
    if override and level == "skip":
        raise _fail(source, name, "level 'skip' cannot be customised with override")
    actions = dict(LEVELS[level])
    for check, value in override.items():
        if check not in CHECKS:
            raise _fail(source, name, f"override names unknown validation {check!r}")
        if check == "integrity":
            raise _fail(source, name, "integrity cannot be overridden")
        if value not in ("enforce", "log", "skip"):
            raise _fail(source, name, f"override action for {check} must be enforce, log or skip, not {value!r}")
        if value == "skip" and check != "revocation":
            raise _fail(source, name, f"{check} cannot be skipped (only revocation can)")
        actions[check] = Action(value)
    return level, MappingProxyType(actions)


def _store(value: str, source: str, name: str) -> tuple[str, str]:
    kind, sep, store = value.partition(":")
    if not sep:
        raise _fail(source, name, f"trust store {value!r} is not TYPE:NAME")
    if kind not in _TRUST_STORE_TYPES:
        raise _fail(source, name, f"trust store {value!r} has unknown type {kind!r} (ca, signingAuthority, tsa)")
    if not _STORE_NAME.fullmatch(store):
        raise _fail(source, name, f"trust store name {store!r} must match [A-Za-z0-9_.-]+")
    return kind, store


def _identities(values: tuple[str, ...], source: str, name: str) -> tuple[bool, tuple[Mapping[str, str], ...]]:
    if "*" in values:
        if len(values) > 1:
            raise _fail(source, name, "the trusted identity '*' cannot be combined with other identities")
        return True, ()
    parsed: list[tuple[str, Mapping[str, str]]] = []
    for value in values:
        if not value.strip():
            raise _fail(source, name, "a trusted identity is empty")
        prefix, sep, rest = value.partition(":")
        if not sep:
            raise _fail(source, name, f"trusted identity {value!r} has no 'type:' prefix")
        if prefix.strip() != _X509_SUBJECT:
            continue
        try:
            parsed.append((value, MappingProxyType(parse_distinguished_name(rest))))
        except ValueError as exc:
            raise _fail(source, name, f"trusted identity {value!r}: {exc}") from None
    for first, dn1 in parsed:
        for second, dn2 in parsed:
            if first != second and identity_matches(dn1, dn2):
                raise _fail(source, name, f"trusted identities {first!r} and {second!r} overlap")
    return False, tuple(dn for _, dn in parsed)


def _check_scope(scope: str, *, what: str) -> None:
    domain, slash, path = scope.partition("/")
    if "*" in scope or not slash or not _DOMAIN.fullmatch(domain) or not _REPOSITORY.fullmatch(path):
        raise NotationError(
            f"{what} {scope!r} is not a fully qualified repository (host[:port]/path, no tag, scheme or wildcard)",
            check="policy",
        )
