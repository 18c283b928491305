"""The X.509 certificate chain of a notation signature: the specification's certificate requirements and time checks.

Rules from notaryproject/specifications ``specs/signature-specification.md`` ("Certificate Requirements"), as
notation-core-go ``x509/codesigning_cert_validations.go`` applies them when it verifies an envelope:

* the chain (``x5c``) is ordered leaf first and ends with a self-signed root; a lone certificate must be
  self-signed and is both leaf and root; every other certificate is issued by the next one (issuer name and
  signature, checked with ``cryptography``'s ``verify_directly_issued_by``) and is not self-signed;
* CA certificates: ``basicConstraints`` present, critical, ``cA=true``, ``pathLenConstraint`` (if any) not smaller
  than the number of CAs below; ``keyUsage`` present, critical, with ``keyCertSign``;
* the leaf: ``basicConstraints`` (optional) ``cA=false``; ``keyUsage`` present, critical, ``digitalSignature`` and
  none of keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly;
  ``extendedKeyUsage`` (optional) without anyExtendedKeyUsage, serverAuth, clientAuth, emailProtection,
  timeStamping, OCSPSigning; an RSA 2048/3072/4096 or EC P-256/P-384/P-521 key, which fixes the JWS algorithm
  (PS256/PS384/PS512, ES256/ES384/ES512);
* no certificate signed with SHA-1 or MD5.

Revocation: specman never contacts CRL or OCSP servers (it runs air-gapped). A chain whose certificates name no
such server is "non-revocable" and passes, as in notation; otherwise the status is unknown and that is a revocation
failure, enforced or logged by the policy level exactly as notation treats an unreachable server (operators opt out
with ``"override": {"revocation": "skip"}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from specman.signature.notation_policy import NotationError

__all__ = [
    "MAX_CHAIN_LENGTH",
    "algorithm_of",
    "check_chain",
    "ensure_parsable",
    "invalid_at",
    "is_trusted",
    "load_certificate",
    "revocation_unknown",
]

#: Longest ``x5c`` accepted (real chains hold 1-4 certificates).
MAX_CHAIN_LENGTH = 10

_T = TypeVar("_T", bound=x509.ExtensionType)
_RSA_ALGORITHMS = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_FORBIDDEN_EKUS = {
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _invalid(certificate: x509.Certificate, reason: str) -> NotationError:
    return NotationError(f"certificate {_name(certificate)!r} {reason}", check="integrity")


def load_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate whose every field this package reads parses now (``cryptography`` parses lazily).

    Raises :class:`ValueError` for anything malformed, so callers can word it.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:
        raise ValueError(str(exc)) from None
    ensure_parsable(certificate)
    return certificate


def ensure_parsable(certificate: x509.Certificate) -> None:
    """Touch every field read later; :class:`ValueError` if one is malformed."""
    try:
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        _ = (certificate.not_valid_before_utc, certificate.not_valid_after_utc, certificate.signature)
        _ = [extension.value for extension in certificate.extensions]
        certificate.public_key()
    except (
        ValueError,
        TypeError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def algorithm_of(certificate: x509.Certificate) -> str:
    """The JWS algorithm notation pairs with the certificate's key, or :class:`NotationError` if unsupported."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _invalid(certificate, "has a public key that cannot be read") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in _RSA_ALGORITHMS:
        return _RSA_ALGORITHMS[key.key_size]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    raise _invalid(certificate, "has a key notation does not accept (RSA 2048/3072/4096 or EC P-256/P-384/P-521)")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _extension(certificate: x509.Certificate, kind: type[_T]) -> x509.Extension[_T] | None:
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise _invalid(certificate, "has malformed extensions") from None


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage:
    extension = _extension(certificate, x509.KeyUsage)
    if extension is None or not extension.critical:
        raise _invalid(certificate, "must have a critical keyUsage extension")
    return extension.value


def _check_leaf(certificate: x509.Certificate) -> None:
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise _invalid(certificate, "is the signing certificate but has basicConstraints cA=true")
    usage = _key_usage(certificate)
    if not usage.digital_signature:
        raise _invalid(certificate, "is the signing certificate but its keyUsage lacks digitalSignature")
    extra = [
        name
        for name, present in (
            ("keyEncipherment", usage.key_encipherment),
            ("dataEncipherment", usage.data_encipherment),
            ("keyAgreement", usage.key_agreement),
            ("keyCertSign", usage.key_cert_sign),
            ("cRLSign", usage.crl_sign),
            ("encipherOnly", usage.key_agreement and usage.encipher_only),
            ("decipherOnly", usage.key_agreement and usage.decipher_only),
        )
        if present
    ]
    if extra:
        raise _invalid(certificate, f"is the signing certificate but its keyUsage also allows {', '.join(extra)}")
    ekus = _extension(certificate, x509.ExtendedKeyUsage)
    if ekus is not None:
        bad = [_FORBIDDEN_EKUS[oid] for oid in ekus.value if oid in _FORBIDDEN_EKUS]
        if bad:
            raise _invalid(certificate, f"is the signing certificate but its extendedKeyUsage holds {', '.join(bad)}")
    algorithm_of(certificate)


def _check_ca(certificate: x509.Certificate, cas_below: int) -> None:
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is None or not constraints.critical or not constraints.value.ca:
        raise _invalid(certificate, "is a CA in the chain but lacks a critical basicConstraints with cA=true")
    value = constraints.value
    if value.path_length is not None and value.path_length < cas_below:
        raise _invalid(certificate, f"allows a path length of {value.path_length} but has {cas_below} CAs below it")
    if not _key_usage(certificate).key_cert_sign:
        raise _invalid(certificate, "is a CA in the chain but its keyUsage lacks keyCertSign")


def _check_signature_hash(certificate: x509.Certificate) -> None:
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise _invalid(certificate, "is signed with an unsupported algorithm") from None
    if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
        raise _invalid(certificate, f"is signed with {algorithm.name.upper()}, which notation forbids")


def check_chain(chain: Sequence[x509.Certificate], algorithm: str) -> None:
    """Enforce the certificate requirements on ``chain`` (leaf first) and that the leaf's key is ``algorithm``'s."""
    if not chain:
        raise NotationError("the signature carries no certificate chain (x5c)", check="integrity")
    if len(chain) > MAX_CHAIN_LENGTH:
        raise NotationError(
            f"the certificate chain has {len(chain)} certificates (at most {MAX_CHAIN_LENGTH})", check="integrity"
        )
    for certificate in chain:
        _check_signature_hash(certificate)
    root = chain[-1]
    if not _issued_by(root, root):
        raise _invalid(root, "ends the chain but is not a valid self-signed root")
    for index, certificate in enumerate(chain[:-1]):
        if _issued_by(certificate, certificate):
            raise _invalid(certificate, "is self-signed but is not the last certificate of the chain")
        if not _issued_by(certificate, chain[index + 1]):
            raise _invalid(certificate, f"is not issued by the next certificate {_name(chain[index + 1])!r}")
    _check_leaf(chain[0])
    for index, certificate in enumerate(chain[1:], start=1):
        _check_ca(certificate, index - 1)
    expected = algorithm_of(chain[0])
    if expected != algorithm:
        raise NotationError(
            f"the envelope says alg {algorithm} but the signing certificate's key needs {expected}", check="integrity"
        )


def invalid_at(chain: Sequence[x509.Certificate], moment: datetime, what: str) -> str | None:
    """Why some certificate of ``chain`` was not valid at ``moment`` (``what`` names the moment), or ``None``."""
    for certificate in chain:
        start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        if moment < start:
            return f"certificate {_name(certificate)!r} is not valid before {_utc(start)} ({what} is {_utc(moment)})"
        if moment > end:
            return f"certificate {_name(certificate)!r} expired at {_utc(end)} ({what} is {_utc(moment)})"
    return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_trusted(chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]) -> bool:
    """Whether some certificate of ``chain`` is byte-identical to a trusted one (notation's ``VerifyAuthenticity``).

    ``check_chain`` has already proved each link, so a trusted certificate anywhere in the chain anchors the leaf.
    """
    anchors = {certificate.public_bytes(Encoding.DER) for certificate in trusted}
    return any(certificate.public_bytes(Encoding.DER) in anchors for certificate in chain)


def revocation_unknown(chain: Sequence[x509.Certificate]) -> str | None:
    """Why revocation cannot be decided offline (a certificate names CRL or OCSP servers), or ``None``."""
    for certificate in chain:
        if _extension(certificate, x509.CRLDistributionPoints) is not None:
            return f"revocation status of {_name(certificate)!r} is unknown: specman does not fetch its CRL"
        access = _extension(certificate, x509.AuthorityInformationAccess)
        methods = [item.access_method for item in access.value] if access is not None else []
        if AuthorityInformationAccessOID.OCSP in methods:
            return f"revocation status of {_name(certificate)!r} is unknown: specman does not query its OCSP server"
    return None
