"""specman's own TLS material: generated once, reused, re-issued when a SAN is missing; real handshakes."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from specman.errors import UsageError
from specman.runtime.tls import ensure_certificates, parse_sans, server_context


def serve_once(ctx: ssl.SSLContext) -> tuple[int, threading.Thread]:
    """A real TLS listener on 127.0.0.1 answering one HTTP request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]

    def run() -> None:
        with sock:
            conn, _ = sock.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


def test_generated_ca_and_server_cert_verify(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    assert files.issued
    assert (files.key.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "tls" / "ca.key").stat().st_mode & 0o777) == 0o600
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(files.ca_cert), str(files.cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "specman-service.hubble-system.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    for host in ("127.0.0.1", "localhost"):
        port, thread = serve_once(server_context(files.cert, files.key))
        ctx = ssl.create_default_context(cafile=str(files.ca_cert))
        response = httpx.get(f"https://{host}:{port}/", verify=ctx)
        assert response.text == "ok"
        thread.join(5)


def test_reuse_and_reissue_keeps_the_ca(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    leaf_before = first.cert.read_bytes()
    again = ensure_certificates(tmp_path)
    assert not again.issued
    assert first.cert.read_bytes() == leaf_before
    more = ensure_certificates(tmp_path, ["manifests.example.com", "10.0.0.7"])
    assert more.issued
    assert more.ca_cert.read_bytes() == ca_before
    leaf = x509.load_pem_x509_certificate(more.cert.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "manifests.example.com" in sans.get_values_for_type(x509.DNSName)
    assert not ensure_certificates(tmp_path, ["manifests.example.com"]).issued


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid --tls-san"):
        parse_sans(["bad host!"])
    (tmp_path / "ca.key").write_text("garbage")
    (tmp_path / "ca.crt").write_text("garbage")
    with pytest.raises(UsageError, match="remove them to regenerate"):
        ensure_certificates(tmp_path)
    with pytest.raises(UsageError, match="cannot load the TLS certificate"):
        server_context(tmp_path / "ca.crt", tmp_path / "ca.key")
