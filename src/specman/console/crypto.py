"""Secrets at rest: AES-256-GCM with a key kept outside the database file.

The key is 32 random bytes, stored base64-encoded in ``<data-dir>/secret.key`` (mode 0600, generated once) or read
from ``--secret-key-file`` (a mounted Kubernetes Secret).  Each value is sealed as ``nonce (12 bytes) || ciphertext
|| tag`` with associated data naming where it belongs (``b"scar:password"``, ``b"registry:<uid>:password"``), so a
sealed value copied into another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from specman.errors import SpecmanError, UsageError
from specman.files import atomic_write

__all__ = ["SecretBox", "load_or_create_key"]

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12


def _decode_key(text: bytes, where: Path) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise UsageError(
            f"{where}: expected {_KEY_BYTES} random bytes, base64-encoded (head -c32 /dev/urandom | base64)"
        )
    return key


def load_or_create_key(path: Path, *, create: bool) -> bytes:
    """The key in ``path``; when ``create`` and the file does not exist, a new key is written there (0600)."""
    try:
        return _decode_key(path.read_bytes(), path)
    except FileNotFoundError:
        if not create:
            raise UsageError(f"secret key file {path} does not exist") from None
    key = AESGCM.generate_key(bit_length=8 * _KEY_BYTES)
    atomic_write(path, base64.b64encode(key) + b"\n", mode=0o600)
    return key


class SecretBox:
    """Seal and open short secrets (passwords) with one AES-GCM key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))

    def open(self, sealed: bytes, context: str) -> str:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode("utf-8")).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise SpecmanError(f"cannot decrypt the stored {context} (was the secret key replaced?)") from None
