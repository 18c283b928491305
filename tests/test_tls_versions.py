"""TLS 1.2 and 1.3 on ``serve`` and ``console`` (Mozilla "intermediate" suites for 1.2), ``--tls-min 1.3`` to narrow.

Checked with the clients old SCAR users have: ``curl --tls-max 1.2`` and ``openssl s_client -tls1_2``; the
suites of TLS 1.2 that are not in the intermediate list (CBC, RSA key exchange) must be refused.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.oci import LayoutRepository, push_artifact
from tests.fixtures.console import ConsoleProcess, start_console
from tests.fixtures.serve import ServeProcess, poll, start_serve

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None, reason="curl and openssl are needed"
)

INTERMEDIATE_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


def _curl(url: str, ca: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--cacert", str(ca), "-o", "/dev/null", "-w", "%{http_code}", *flags, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _s_client(port: int, ca: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca), "-brief", *flags],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _cipher(result: subprocess.CompletedProcess[str]) -> str:
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("Ciphersuite:"):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    work = tmp_path_factory.mktemp("tls-versions")
    tree = work / "tree"
    tree.mkdir()
    (tree / "a.json").write_text("{}\n")
    push_artifact(LayoutRepository(work / "layout", create=True), tree, "1.0.0")
    source = [str(work / "layout"), "--oci-layout"]
    default = start_serve(source, work / "default", extra_args=["--interval", "1h"])
    try:
        narrow = start_serve(source, work / "narrow", extra_args=["--interval", "1h", "--tls-min", "1.3"])
        try:
            for server in (default, narrow):  # live is not ready: wait for the first generation
                with server.client() as client:
                    assert poll(lambda: client.get("/_specman/readyz").status_code == 200), server.log_tail()
            yield default, narrow
        finally:
            narrow.stop()
    finally:
        default.stop()


def test_serve_accepts_tls12_with_intermediate_suites(
    tls_servers: tuple[ServeProcess, ServeProcess],
) -> None:
    server, _ = tls_servers
    url = f"https://127.0.0.1:{server.port}/a.json"
    for flags in (("--tls-max", "1.2"), ("--tlsv1.3",)):
        result = _curl(url, server.ca, *flags)
        assert result.stdout == "200", (flags, result.stderr)
    for cipher in sorted(INTERMEDIATE_TLS12):
        result = _s_client(server.port, server.ca, "-tls1_2", "-cipher", cipher)
        if "ECDSA" in cipher:  # specman's generated certificate is EC: the RSA suites cannot be chosen
            assert result.returncode == 0 and _cipher(result) == cipher, result.stderr[-500:]
    plain = _s_client(server.port, server.ca, "-tls1_2")
    assert plain.returncode == 0 and _cipher(plain) in INTERMEDIATE_TLS12, plain.stderr[-500:]
    for weak in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"):
        refused = _s_client(server.port, server.ca, "-tls1_2", "-cipher", weak)
        assert refused.returncode != 0, (weak, _cipher(refused))
    old = _s_client(server.port, server.ca, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0  # TLS 1.1 and older: never


def test_serve_tls_min_13_refuses_tls12(tls_servers: tuple[ServeProcess, ServeProcess]) -> None:
    _, server = tls_servers
    url = f"https://127.0.0.1:{server.port}/a.json"
    assert _curl(url, server.ca, "--tls-max", "1.2").stdout != "200"
    assert _s_client(server.port, server.ca, "-tls1_2").returncode != 0
    assert _curl(url, server.ca, "--tlsv1.3").stdout == "200"


@pytest.mark.parametrize("tls_min", ["1.2", "1.3"])
def test_console_tls_versions(tmp_path: Path, tls_min: str) -> None:
    console: ConsoleProcess = start_console(tmp_path / "console", "--tls-min", tls_min)
    try:
        url = f"{console.base}/healthz"
        tls12 = _curl(url, console.ca, "--tls-max", "1.2")
        assert (tls12.stdout == "200") is (tls_min == "1.2"), tls12.stderr
        assert _curl(url, console.ca, "--tlsv1.3").stdout == "200"
    finally:
        console.stop()


def test_bad_tls_min_is_a_usage_error(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "specman", "console", "--data-dir", str(tmp_path), "--tls-min", "1.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--tls-min" in result.stderr
