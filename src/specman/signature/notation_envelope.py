"""Notation's JWS signature envelope (``application/jose+json``): parsing and the integrity check.

Format (notaryproject/specifications ``specs/signature-envelope-jws.md``; notation-core-go ``signature/jws``): a
flattened JWS JSON object with exactly ``payload``, ``protected``, ``header`` and ``signature``.

* ``protected`` (base64url JSON): ``alg`` (PS256/384/512, ES256/384/512, and it must be the algorithm of the
  signing certificate's key), ``cty`` = ``application/vnd.cncf.notary.payload.v1+json``,
  ``io.cncf.notary.signingScheme`` (``notary.x509`` with ``io.cncf.notary.signingTime``, or
  ``notary.x509.signingAuthority`` with ``io.cncf.notary.authenticSigningTime``), optional
  ``io.cncf.notary.expiry``, and ``crit``, which must list the signing scheme, the expiry and the authentic signing
  time when present. A ``crit`` entry specman does not understand rejects the signature (RFC 7515 §4.1.11);
  ``io.cncf.notary.verificationPlugin`` is reported as needing a plugin, which specman does not run.
* ``header`` (unprotected): ``x5c`` (standard base64 DER, leaf first), optional
  ``io.cncf.notary.timestampSignature`` (RFC 3161 token) and ``io.cncf.notary.signingAgent``; other members are
  ignored, as notation ignores them.
* ``payload`` (base64url JSON): ``{"targetArtifact": {"mediaType", "digest", "size", ["annotations"]}}``.
* The signed bytes are ``protected + "." + payload`` as stored (never re-serialised).

The signature itself is verified by joserfc (``jws.deserialize_json``: algorithm dispatch, RSASSA-PSS with a salt
of the hash length, ECDSA raw ``r||s``) over ``cryptography``; joserfc knows nothing of notation, so the header rules
above, the strict base64url and RFC 3339 checks and the refusal of duplicate JSON members are written here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from specman.signature.notation_chain import MAX_CHAIN_LENGTH, check_chain, load_certificate
from specman.signature.notation_policy import NotationError

__all__ = [
    "COSE_MEDIA_TYPE",
    "JWS_MEDIA_TYPE",
    "MAX_ENVELOPE_BYTES",
    "PAYLOAD_CONTENT_TYPE",
    "SCHEME_X509",
    "SCHEME_X509_SIGNING_AUTHORITY",
    "JwsEnvelope",
    "TargetArtifact",
    "verify_jws",
]

JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SCHEME_X509 = "notary.x509"
SCHEME_X509_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
#: Envelopes larger than this are refused before parsing. Real ones are 2-10 KiB (with an RFC 3161 token);
#: notation itself caps signature blobs at 32 MiB. Callers should refuse bigger layers before downloading them.
MAX_ENVELOPE_BYTES = 1024 * 1024

_ALGORITHMS = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_SIGNING_SCHEME = "io.cncf.notary.signingScheme"
_SIGNING_TIME = "io.cncf.notary.signingTime"
_AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
_EXPIRY = "io.cncf.notary.expiry"
_PLUGIN_HEADERS = ("io.cncf.notary.verificationPlugin", "io.cncf.notary.verificationPluginMinVersion")
_UNDERSTOOD_CRITICAL = (_SIGNING_SCHEME, _AUTHENTIC_SIGNING_TIME, _EXPIRY)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
_REGISTRY = jws.JWSRegistry(
    header_registry={name: HeaderParameter(name, "str") for name in (*_UNDERSTOOD_CRITICAL, _SIGNING_TIME)},
    algorithms=list(_ALGORITHMS),
    strict_check_header=False,
)
_REGISTRY.max_header_length = MAX_ENVELOPE_BYTES
_REGISTRY.max_payload_length = MAX_ENVELOPE_BYTES


@dataclass(frozen=True)
class TargetArtifact:
    """The descriptor a notation signature signs (``targetArtifact`` of the payload)."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class JwsEnvelope:
    """A JWS envelope whose signature verified against its own leaf certificate (nothing about trust yet)."""

    algorithm: str
    signing_scheme: str
    signing_time: datetime
    expiry: datetime | None
    target: TargetArtifact
    chain: tuple[x509.Certificate, ...]
    signing_agent: str | None
    timestamp_signature: bytes | None


def _malformed(reason: str) -> NotationError:
    return NotationError(f"malformed notation JWS envelope: {reason}", check="envelope")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _malformed(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _malformed(f"{what} is not a JSON object")
    return value


def _b64url(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise _malformed(f"{what} is not unpadded base64url")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64std(value: Any, what: str) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError(what)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise _malformed(f"{what} is not standard base64") from None


def _time(header: dict[str, Any], name: str) -> datetime | None:
    value = header.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _malformed(f"{name} is not an RFC 3339 time: {value!r}")
    seconds, dot, rest = value.partition(".")
    if dot:  # Python parses at most 6 fractional digits; Go writes up to 9.
        digits = re.match(r"\d+", rest)
        assert digits is not None
        value = f"{seconds}.{digits.group()[:6]}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _malformed(f"{name} is not a valid time: {header[name]!r}") from None


def _check_critical(header: dict[str, Any], scheme: str, expiry: datetime | None) -> None:
    critical = header.get("crit")
    if not isinstance(critical, list) or not critical or not all(isinstance(name, str) for name in critical):
        raise _malformed('"crit" must be a non-empty list of header names')
    for name in critical:
        if name not in header:
            raise _malformed(f"{name!r} is marked critical but not present")
    for name in _PLUGIN_HEADERS:
        if name in critical:
            raise NotationError(f"the signature requires verification plugin {header[name]!r}; specman runs none")
    for name in critical:
        if name not in _UNDERSTOOD_CRITICAL:
            raise NotationError(
                f"the signature marks unknown header {name!r} critical; refusing what is not understood"
            )
    required = [_SIGNING_SCHEME]
    required += [_EXPIRY] if expiry is not None else []
    required += [_AUTHENTIC_SIGNING_TIME] if scheme == SCHEME_X509_SIGNING_AUTHORITY else []
    missing = [name for name in required if name not in critical]
    if missing:
        raise _malformed(f'{", ".join(missing)} must be listed in "crit"')


def _protected(segment: str) -> tuple[set[str], str, str, datetime, datetime | None]:
    header = _json_object(_b64url(segment, "protected header"), "protected header")
    algorithm = header.get("alg")
    if algorithm not in _ALGORITHMS:
        raise NotationError(f"unsupported JWS alg {algorithm!r} (notation uses {', '.join(_ALGORITHMS)})")
    if header.get("cty") != PAYLOAD_CONTENT_TYPE:
        raise NotationError(f"unsupported payload content type {header.get('cty')!r} (expected {PAYLOAD_CONTENT_TYPE})")
    scheme = header.get(_SIGNING_SCHEME)
    signing_time, authentic_time = _time(header, _SIGNING_TIME), _time(header, _AUTHENTIC_SIGNING_TIME)
    if scheme == SCHEME_X509:
        if authentic_time is not None:
            raise _malformed(f"{_AUTHENTIC_SIGNING_TIME} is not allowed with signing scheme {SCHEME_X509}")
        time = signing_time
    elif scheme == SCHEME_X509_SIGNING_AUTHORITY:
        if signing_time is not None:
            raise _malformed(f"{_SIGNING_TIME} is not allowed with signing scheme {SCHEME_X509_SIGNING_AUTHORITY}")
        time = authentic_time
    else:
        raise NotationError(f"unsupported signing scheme {scheme!r} (notary.x509 or notary.x509.signingAuthority)")
    if time is None:
        raise _malformed(f"the signing time is missing (signing scheme {scheme})")
    expiry = _time(header, _EXPIRY)
    if expiry is not None and expiry <= time:
        raise _malformed(f"{_EXPIRY} {expiry.isoformat()} is not after the signing time {time.isoformat()}")
    _check_critical(header, scheme, expiry)
    return set(header), algorithm, scheme, time, expiry


def _unprotected(
    header: Any, protected_names: set[str]
) -> tuple[tuple[x509.Certificate, ...], str | None, bytes | None]:
    if not isinstance(header, dict):
        raise _malformed('"header" is not a JSON object')
    shared = protected_names & set(header)
    if shared:
        raise _malformed(f"{', '.join(sorted(shared))} appear in both protected and unprotected headers")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise NotationError("the signature carries no certificate chain (x5c)", check="integrity")
    if len(x5c) > MAX_CHAIN_LENGTH:
        raise _malformed(f"x5c has {len(x5c)} certificates (at most {MAX_CHAIN_LENGTH})")
    chain: list[x509.Certificate] = []
    for index, item in enumerate(x5c):
        try:
            chain.append(load_certificate(_b64std(item, f"x5c[{index}]")))
        except ValueError:
            raise _malformed(f"x5c[{index}] is not a DER X.509 certificate") from None
    agent = header.get("io.cncf.notary.signingAgent")
    token = header.get("io.cncf.notary.timestampSignature")
    return (
        tuple(chain),
        agent if isinstance(agent, str) else None,
        _b64std(token, "io.cncf.notary.timestampSignature") if token is not None else None,
    )


def _target(payload: bytes) -> TargetArtifact:
    target = _json_object(payload, "payload").get("targetArtifact")
    if not isinstance(target, dict):
        raise _malformed("the payload has no targetArtifact object")
    media_type, digest, size = target.get("mediaType"), target.get("digest"), target.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise _malformed("targetArtifact needs string mediaType and digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _malformed("targetArtifact needs a non-negative integer size")
    return TargetArtifact(media_type, digest, size)


def _verify_signature(envelope: dict[str, Any], leaf: x509.Certificate) -> None:
    public_key = leaf.public_key()
    key: RSAKey | ECKey
    if isinstance(public_key, rsa.RSAPublicKey):
        key = RSAKey.import_key(public_key)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        key = ECKey.import_key(public_key)
    else:  # pragma: no cover - check_chain accepts RSA and EC keys only
        raise NotationError("the signing certificate's key is neither RSA nor EC", check="integrity")
    try:
        flattened: jws.FlattenedJSONSerialization = {
            "payload": envelope["payload"],
            "protected": envelope["protected"],
            "header": envelope["header"],
            "signature": envelope["signature"],
        }
        jws.deserialize_json(flattened, key, registry=_REGISTRY)
    except BadSignatureError:
        raise NotationError(
            "the signature does not verify: payload or protected header altered, or not made with the leaf key",
            check="integrity",
        ) from None
    except (JoseError, ValueError, TypeError) as exc:
        raise NotationError(f"the JWS signature cannot be verified: {exc}", check="integrity") from None


def verify_jws(envelope: bytes, media_type: str) -> JwsEnvelope:
    """Parse ``envelope`` and verify its integrity: header rules, chain requirements, signature, payload shape."""
    if media_type == COSE_MEDIA_TYPE:
        raise NotationError(
            "COSE notation envelopes (application/cose) are not supported, only JWS",
            hint="sign with notation sign --signature-format jws",
        )
    if media_type != JWS_MEDIA_TYPE:
        raise NotationError(f"unsupported notation envelope media type {media_type!r} (expected {JWS_MEDIA_TYPE})")
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise NotationError(f"the signature envelope is {len(envelope)} bytes, more than {MAX_ENVELOPE_BYTES}")
    document = _json_object(envelope, "envelope")
    if set(document) != {"payload", "protected", "header", "signature"}:
        raise _malformed("a flattened JWS with exactly payload, protected, header and signature is expected")
    protected_names, algorithm, scheme, signing_time, expiry = _protected(document["protected"])
    chain, agent, token = _unprotected(document["header"], protected_names)
    payload = _b64url(document["payload"], "payload")
    if not _b64url(document["signature"], "signature"):
        raise _malformed("the signature is empty")
    check_chain(chain, algorithm)
    _verify_signature(document, chain[0])
    return JwsEnvelope(algorithm, scheme, signing_time, expiry, _target(payload), chain, agent, token)
