"""Notation's X.509 trust store directory, read as notation-go ``verifier/truststore/truststore.go`` reads it.

Layout (``{NOTATION_CONFIG}/truststore``)::

    truststore/x509/ca/NAME/*.crt|*.pem|*.cer             roots/intermediates for signing scheme notary.x509
    truststore/x509/signingAuthority/NAME/…               for notary.x509.signingAuthority
    truststore/x509/tsa/NAME/…                            timestamping authority roots

Every regular file of a named store is read: PEM (any number of ``CERTIFICATE`` blocks) or a single DER
certificate. Each certificate must be a CA (``basicConstraints cA=true``) or self-signed; ``tsa`` certificates must
be self-signed roots; an empty store is an error. Two deliberate departures from notation, both for the
operator's own mounts: symlinks are followed (Kubernetes Secret and ConfigMap volumes are symlinks; notation refuses
links in its config directory), and hidden entries (``..data``, ``..2024_…`` of those volumes) are skipped. Other
subdirectories are refused, as notation does. Stores are read once, when the policy is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from specman.signature.notation_chain import ensure_parsable, load_certificate
from specman.signature.notation_policy import NotationError

__all__ = ["MAX_CERTIFICATE_FILE_BYTES", "TrustStore", "load_trust_store", "trust_store_root"]

#: A trust store file larger than this is refused (a certificate is 1-2 KiB; bundles of a few hundred fit).
MAX_CERTIFICATE_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TrustStore:
    """Certificates of the named stores a trust policy uses, keyed by ``(type, name)``."""

    root: Path
    stores: Mapping[tuple[str, str], tuple[x509.Certificate, ...]]

    def certificates(self, store_type: str, names: Iterable[str]) -> tuple[x509.Certificate, ...]:
        """All certificates of the stores ``names`` of ``store_type`` (loaded before, so never I/O)."""
        result: list[x509.Certificate] = []
        for name in dict.fromkeys(names):
            result.extend(self.stores.get((store_type, name), ()))
        return tuple(result)


def trust_store_root(directory: Path) -> Path:
    """The directory holding ``x509/``: ``directory`` itself, or its ``truststore/`` (a notation config dir)."""
    if not (directory / "x509").is_dir() and (directory / "truststore" / "x509").is_dir():
        return directory / "truststore"
    return directory


def load_trust_store(directory: Path, wanted: Iterable[tuple[str, str]]) -> TrustStore:
    """Read and validate the stores ``wanted`` (``(type, name)`` pairs) under ``directory``."""
    root = trust_store_root(directory)
    stores: dict[tuple[str, str], tuple[x509.Certificate, ...]] = {}
    for store_type, name in dict.fromkeys(wanted):
        stores[(store_type, name)] = _read_store(root, store_type, name)
    return TrustStore(root, MappingProxyType(stores))


def _read_store(root: Path, store_type: str, name: str) -> tuple[x509.Certificate, ...]:
    label = f"trust store {store_type}:{name}"
    path = root / "x509" / store_type / name
    if not path.is_dir():
        raise NotationError(f"{label} does not exist: no directory {path}", check="truststore")
    certificates: list[x509.Certificate] = []
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise NotationError(f"{label}: cannot list {path}: {exc.strerror}", check="truststore") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            raise NotationError(
                f"{label}: {entry.name} is a directory; a store holds certificate files only", check="truststore"
            )
        for certificate in _read_file(entry, label):
            _check_trusted(certificate, store_type, f"{label}, {entry.name}")
            certificates.append(certificate)
    if not certificates:
        raise NotationError(f"{label} holds no certificates ({path})", check="truststore")
    return tuple(certificates)


def _read_file(path: Path, label: str) -> list[x509.Certificate]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CERTIFICATE_FILE_BYTES + 1)
    except OSError as exc:
        raise NotationError(f"{label}: cannot read {path.name}: {exc.strerror}", check="truststore") from None
    if len(data) > MAX_CERTIFICATE_FILE_BYTES:
        raise NotationError(
            f"{label}: {path.name} is larger than {MAX_CERTIFICATE_FILE_BYTES} bytes", check="truststore"
        )
    try:
        certificates = x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [load_certificate(data)]
        for certificate in certificates:
            ensure_parsable(certificate)
        return certificates
    except (ValueError, x509.InvalidVersion):
        raise NotationError(f"{label}: {path.name} is not a PEM or DER X.509 certificate", check="truststore") from None


def _self_signed(certificate: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_trusted(certificate: x509.Certificate, store_type: str, label: str) -> None:
    subject = certificate.subject.rfc4514_string()
    if store_type == "tsa" and not _self_signed(certificate):
        raise NotationError(
            f"{label}: {subject!r} is not a self-signed root (tsa stores hold roots)", check="truststore"
        )
    if not _is_ca(certificate) and not _self_signed(certificate):
        raise NotationError(f"{label}: {subject!r} is neither a CA nor a self-signed certificate", check="truststore")
