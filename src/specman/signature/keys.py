"""Keys: trusted public keys (PEM) for verification, private keys for signing, and the signature primitives.

Everything cryptographic goes through ``cryptography``; the algorithm choices follow sigstore's ``LoadVerifier`` /
``LoadSigner`` (sigstore/sigstore ``pkg/signature``), which cosign uses for key-based signatures:

* ECDSA (P-256, P-384, P-521): ASN.1 DER signature over SHA-256 of the message (cosign always loads keys with
  ``crypto.SHA256``); the curve's own hash (SHA-384 for P-384, SHA-512 for P-521) is accepted too, as sigstore-go
  uses it for bundles;
* RSA (2048 bits and more): RSASSA-PKCS1-v1_5 with SHA-256;
* Ed25519: pure Ed25519 over the message.

A key's *fingerprint* is ``sha256:<hex>`` of its SubjectPublicKeyInfo DER; its *hint* is the same hash in standard
base64, which is what cosign writes as a Sigstore bundle's ``publicKey.hint`` (internal/key/svkeypair.go).
Private keys are PEM as openssl writes them (``EC PRIVATE KEY`` with or without an ``EC PARAMETERS`` block,
``PRIVATE KEY`` = PKCS#8, ``ENCRYPTED PRIVATE KEY``, ``RSA PRIVATE KEY``); a passphrase is asked for only when the
key is encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from specman.errors import UsageError

__all__ = [
    "PrivateKey",
    "PublicKey",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "load_public_keys",
]

MAX_KEY_FILE: Final = 64 * 1024
_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\s*", re.DOTALL)
_CURVE_HASH: Final[dict[str, hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256(),
    "secp384r1": hashes.SHA384(),
    "secp521r1": hashes.SHA512(),
}
Verifiable = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
Signing = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _describe(key: PublicKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384", "secp521r1": "ECDSA P-521"}.get(
            key.curve.name, key.curve.name
        )
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def _check_supported(key: PublicKeyTypes, where: str) -> Verifiable:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASH:
            raise UsageError(f"{where}: curve {key.curve.name} is not supported (P-256, P-384, P-521)")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise UsageError(f"{where}: RSA key of {key.key_size} bits is too small (at least 2048)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise UsageError(f"{where}: {type(key).__name__} keys are not supported (ECDSA, RSA, Ed25519)")


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key; ``name`` says where it came from (a file name), never the key itself."""

    key: Verifiable
    name: str

    @property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    @property
    def hint(self) -> str:
        return base64.b64encode(hashlib.sha256(self.der).digest()).decode()

    @property
    def algorithm(self) -> str:
        return _describe(self.key)

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Does ``signature`` sign ``message`` with this key (rules in the module docstring)?"""
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                own = _CURVE_HASH[self.key.curve.name]
                for algorithm in [hashes.SHA256()] + ([own] if own.name != "sha256" else []):
                    try:
                        self.key.verify(signature, message, ec.ECDSA(algorithm))
                        return True
                    except InvalidSignature:
                        continue
                return False
            if isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return True
            self.key.verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False


def load_public_key(data: bytes, where: str) -> PublicKey:
    """The one public key in PEM ``data`` (``PUBLIC KEY``, or ``RSA PUBLIC KEY``); UsageError with the cause."""
    blocks = [m for m in _PEM_BLOCK.finditer(data) if b"PUBLIC KEY" in m.group(1)]
    if not blocks:
        kind = "a private key" if b"PRIVATE KEY" in data else "no PEM public key"
        raise UsageError(f"{where}: {kind} (expected '-----BEGIN PUBLIC KEY-----')")
    if len(blocks) > 1:
        raise UsageError(f"{where}: {len(blocks)} public keys in one file; give one file per key")
    try:
        key = serialization.load_pem_public_key(blocks[0].group(0))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{where}: malformed PEM public key ({exc})") from None
    return PublicKey(_check_supported(key, where), where)


def load_public_keys(paths: list[Path] | tuple[Path, ...]) -> tuple[PublicKey, ...]:
    """Every key file in ``paths`` (each one PEM public key)."""
    return tuple(load_public_key(_read_key_file(path), str(path)) for path in paths)


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise UsageError(f"{path}: {path.stat().st_size} bytes is too large for a key file")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the key file {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class PrivateKey:
    """A signing key; ``public`` is its public half."""

    key: Signing
    name: str

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.name)

    def sign(self, message: bytes) -> bytes:
        """The signature cosign would make with this key (ECDSA-SHA256 DER, RSA PKCS#1 v1.5 SHA-256, Ed25519)."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(message, ec.ECDSA(hashes.SHA256()))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(message)

    def pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with ``passphrase`` (best available cipher) when one is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(path: Path, passphrase: Callable[[], bytes]) -> PrivateKey:
    """The signing key in ``path``; ``passphrase()`` is called only if the key is encrypted."""
    data = _read_key_file(path)
    blocks = [m for m in _PEM_BLOCK.finditer(data) if m.group(1).endswith(b"PRIVATE KEY")]
    if not blocks:
        raise UsageError(f"{path}: no PEM private key (expected '-----BEGIN PRIVATE KEY-----' or 'EC PRIVATE KEY')")
    block = blocks[0].group(0)
    if b"SIGSTORE PRIVATE KEY" in blocks[0].group(1) or b"COSIGN PRIVATE KEY" in blocks[0].group(1):
        raise UsageError(
            f"{path}: a cosign-encrypted key (scrypt + secretbox) is not supported; "
            "export it as PKCS#8 (openssl pkcs8) or create one with 'specman keygen'"
        )
    encrypted = b"ENCRYPTED" in blocks[0].group(1) or b"Proc-Type: 4,ENCRYPTED" in block
    try:
        key = serialization.load_pem_private_key(block, passphrase() if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        cause = "wrong passphrase or damaged key" if encrypted else f"malformed key ({exc})"
        raise UsageError(f"{path}: cannot load the private key: {cause}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path}: {type(key).__name__} keys are not supported (ECDSA, RSA, Ed25519)")
    _check_supported(key.public_key(), str(path))
    return PrivateKey(key, str(path))


def generate_key(algorithm: str = "ecdsa-p256") -> PrivateKey:
    """A new key: ``ecdsa-p256`` (cosign's default), ``ecdsa-p384``, ``ed25519`` or ``rsa-3072``."""
    key: PrivateKeyTypes
    if algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "rsa-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise UsageError(f"unknown key algorithm {algorithm!r} (ecdsa-p256, ecdsa-p384, ed25519, rsa-3072)")
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
    return PrivateKey(key, "generated")
