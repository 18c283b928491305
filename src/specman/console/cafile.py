"""CA certificates given as PEM text in request bodies: checked on input, handed to the OCI client as a file.

``specman.oci.http.TLSOptions`` (the one TLS setup of specman) takes a CA *file*; ``ca_file(pem)`` writes the PEM to
a private temporary file for the duration of one operation and removes it afterwards.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509

__all__ = ["ca_file", "pem_problem"]


def pem_problem(text: str) -> str | None:
    """None when ``text`` is empty or holds PEM certificates, else what is wrong with it."""
    if not text.strip():
        return None
    try:
        certs = x509.load_pem_x509_certificates(text.encode("utf-8"))
    except ValueError:
        return "must be PEM certificates (-----BEGIN CERTIFICATE-----)"
    return None if certs else "holds no certificate"


@contextmanager
def ca_file(pem: str) -> Iterator[str | None]:
    """A path to a file holding ``pem`` (None when ``pem`` is empty), removed when the block ends."""
    if not pem.strip():
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="specman-ca-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(pem)
        yield path
    finally:
        os.unlink(path)
