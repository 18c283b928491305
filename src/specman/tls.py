"""TLS material for specman's own servers (``serve`` and ``console``): a private CA and a server certificate.

On first start a private CA (EC P-256, 10 years) and a server certificate signed by it are written to
``<data-dir>/tls/``: ``ca.crt`` (give it to clients: ``curl --cacert``), ``ca.key``, ``server.crt`` (leaf +
CA chain), ``server.key``.  Keys are 0600 and every file is written atomically.  Later starts reuse them; the
server certificate is issued again (by the same CA, so clients keep trusting it) when it expires within 30
days or lacks a requested subject alternative name.  The default SANs are ``localhost``, ``127.0.0.1``,
``::1`` and ``specman-service.hubble-system.svc.cluster.local``; ``--tls-san`` adds more (IP or DNS).

This module writes files and builds ``ssl.SSLContext`` objects; it does not listen on sockets.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from specman.errors import UsageError

__all__ = ["DEFAULT_SANS", "TLSFiles", "ensure_certificates", "parse_sans", "server_context"]

DEFAULT_SANS = ("localhost", "127.0.0.1", "::1", "specman-service.hubble-system.svc.cluster.local")
_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=397)
_RENEW_BEFORE = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(minutes=5)

San = x509.DNSName | x509.IPAddress
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    cert: Path
    key: Path
    issued: bool  # a server certificate was (re)issued by this call


def parse_sans(values: Iterable[str]) -> list[San]:
    """``127.0.0.1``/``::1`` → IP SANs, anything else a DNS name (validated loosely, as the CLI takes it)."""
    sans: list[San] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(value)))
            continue
        except ValueError:
            pass
        label_ok = all(
            part and len(part) < 64 and part.replace("-", "").replace("*", "").isalnum() for part in value.split(".")
        )
        if not label_ok or len(value) > 253:
            raise UsageError(f"invalid --tls-san {raw!r}: expected an IP address or a DNS name")
        sans.append(x509.DNSName(value.lower()))
    return list(dict.fromkeys(sans))


def _write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "specman"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _new_ca(tls_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("specman private CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(tls_dir / "ca.key", _key_pem(key), 0o600)
    _write(tls_dir / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return key, cert


def _load_ca(tls_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    try:
        key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise UsageError(
            f"{tls_dir}: ca.crt/ca.key are not a PEM certificate and key; remove them to regenerate"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{tls_dir}/ca.key is not an EC key generated by specman; remove it to regenerate")
    return key, cert


def _leaf_is_good(path: Path, ca: x509.Certificate, sans: Sequence[San]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    if cert.issuer != ca.subject or cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < _RENEW_BEFORE:
        return False
    try:
        present = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return set(sans) <= present


def ensure_certificates(tls_dir: Path, extra_sans: Iterable[str] = ()) -> TLSFiles:
    """Create or reuse the private CA and a server certificate covering the default and extra SANs."""
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sans = parse_sans([*DEFAULT_SANS, *extra_sans])
    loaded = _load_ca(tls_dir)
    ca_key, ca_cert = loaded if loaded is not None else _new_ca(tls_dir)
    files = TLSFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key", issued=False)
    if (tls_dir / "server.key").exists() and _leaf_is_good(files.cert, ca_cert, sans):
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("specman"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + _LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.key, _key_pem(key), 0o600)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    _write(files.cert, chain, 0o644)
    return TLSFiles(files.ca_cert, files.cert, files.key, issued=True)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context (TLS 1.2+) for ``cert``/``key`` (specman's own or ``--tls-cert/--tls-key``)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return ctx
