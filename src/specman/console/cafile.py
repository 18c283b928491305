"""CA certificates given as PEM text in request bodies, checked on input (``pem_problem``).

They reach the OCI client as text: ``specman.oci.http.TLSOptions(ca_data=...)``, the one TLS setup of specman.
"""

from __future__ import annotations

from cryptography import x509

__all__ = ["pem_problem"]


def pem_problem(text: str) -> str | None:
    """None when ``text`` is empty or holds PEM certificates, else what is wrong with it."""
    if not text.strip():
        return None
    try:
        certs = x509.load_pem_x509_certificates(text.encode("utf-8"))
    except ValueError:
        return "must be PEM certificates (-----BEGIN CERTIFICATE-----)"
    return None if certs else "holds no certificate"
