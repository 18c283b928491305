"""A renewed TLS certificate is served without a restart (issue 7): cert-manager renews the Secret in place.

A real ``specman serve`` runs as overlays/tls's container (its env and volumes from the rendered manifests, two
granian workers), the Secret ``specman-tls`` projected by the kubelet's atomic writer. The Secret is replaced by
a certificate from another CA (made now), as the kubelet does it in a running pod (a new timestamped directory,
``..data`` swapped, the old directory deleted), while a client opens a new connection for every request and
records which certificate each connection was served with. The new certificate must be served by the same
process; no request may fail; a pair that does not match is refused and the served certificate stays.
"""

from __future__ import annotations

import copy
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate
import pytest

from tests.conftest import ServeFactory
from tests.fixtures.certs import Certs, make_certs
from tests.fixtures.kube import Obj, PodSandbox, docs_patches, one, render, render_patched
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess, poll

WAIT = 60.0
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")
IN_NETNS = "SPECMAN_TEST_NETNS"  # set by the netns variant for the run inside it


def _migrate_req() -> bool:
    try:
        return MIGRATE_REQ.read_text().strip() == "1"
    except OSError:
        return False


def _check_failures(prober: Prober, workers: int) -> None:
    """No request may fail where the kernel hands a stopping worker's queued connections to the other listeners
    (``net.ipv4.tcp_migrate_req=1``). Without it (the default), a connection still in the accept queue (or in its
    TLS handshake) of the old worker when that worker closes its listener is reset: at most a couple per replaced
    worker, never an HTTP error."""
    report = f"{len(prober.failures)} of {len(prober.served)} requests failed: {prober.failures}"
    if _migrate_req():
        assert not prober.failures, report
        return
    assert len(prober.failures) <= 2 * workers, report
    assert all(isinstance(exc, OSError) for exc in prober.failures), report  # resets/EOFs, no HTTP status


def _der(pem_file: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_file.read_text())


@dataclass
class Prober:
    """New connection, GET /healthz, close — again and again on a thread; every outcome recorded."""

    port: int
    context: ssl.SSLContext
    served: list[bytes] = field(default_factory=list)  # the certificate (DER) of each successful request
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def once(self) -> bytes:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            assert conn.sock is not None
            der = conn.sock.getpeercert(binary_form=True)
            assert der is not None
            return der
        finally:
            conn.close()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.served.append(self.once())
            except (OSError, AssertionError, http.client.HTTPException) as exc:
                self.failures.append(exc)

    def all_serve(self, der: bytes, count: int = 20) -> bool:
        """``count`` new connections in a row are served ``der`` (every worker has it)."""
        return all(self.once() == der for _ in range(count))


def test_a_renewed_certificate_is_served_without_a_restart(
    plain_registry: Registry, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    objects: list[Obj] = copy.deepcopy(render("overlays/tls"))
    first, second = make_certs(tmp_path / "pki-1"), make_certs(tmp_path / "pki-2")
    config = one(objects, "ConfigMap", "specman-config")["data"]
    config.update({"source": f"{plain_registry.host}/renewal/test", "plain-http": "true"})

    def tls_secret(certs: Certs, key: Path | None = None) -> dict[str, str]:
        return {"tls.crt": certs.server_cert.read_text(), "tls.key": (key or certs.server_key).read_text()}

    sts = one(objects, "StatefulSet", "specman")
    pod = PodSandbox(objects, sts, "specman", tmp_path / "specman-0", {"specman-tls": tls_secret(first)})
    env = pod.env()
    assert int(env["SPECMAN_WORKERS"]) == 2
    server: ServeProcess = serve_factory([], Path(env["SPECMAN_DATA_DIR"]), env=env, workers=2, ca=first.ca_cert)

    context = ssl.create_default_context(cafile=str(first.ca_cert))
    context.load_verify_locations(cafile=str(second.ca_cert))  # both CAs: every connection checks the chain
    prober = Prober(server.port, context)
    assert prober.all_serve(_der(first.server_cert))
    thread = threading.Thread(target=prober.run, daemon=True)
    thread.start()
    try:
        pod.update_secret("specman-tls", tls_secret(second))  # cert-manager renewed it; the kubelet projects it
        assert poll(lambda: prober.all_serve(_der(second.server_cert)), WAIT, interval=0.5), server.log_tail()
        assert server.wait_log("Stopped old worker-2", WAIT)
    finally:
        prober.stop.set()
        thread.join(30)
    assert server.running
    _check_failures(prober, workers=2)
    served = {_der(first.server_cert): "first", _der(second.server_cert): "second"}
    assert {served[der] for der in prober.served} == {"first", "second"}  # one process served both
    assert "TLS certificate" in server.log_text()

    # a certificate with a key that does not belong to it is refused (logged once); the served one stays
    pod.update_secret("specman-tls", tls_secret(first, key=second.server_key))
    assert server.wait_log("the old certificate stays served", WAIT), server.log_tail()
    assert prober.all_serve(_der(second.server_cert))
    assert server.log_text().count("gracefully respawning workers") == 1


def test_no_request_fails_when_the_kernel_migrates_queued_connections(tmp_path: Path) -> None:
    """The test above again, alone in a network namespace (its own loopback) with ``net.ipv4.tcp_migrate_req=1``
    (a per-namespace sysctl; a pod gets it through ``securityContext.sysctls``): then not one request fails."""
    if os.environ.get(IN_NETNS):
        pytest.skip("already inside the network namespace")
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip (util-linux, iproute2) for a network namespace of its own")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    script = (
        'ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && exec "$0" -m pytest -p no:xdist -q '
        '-p no:cacheprovider "$1" --basetemp "$2"'
    )
    target = f"{__file__}::test_a_renewed_certificate_is_served_without_a_restart"
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, sys.executable, target, str(tmp_path / "inner")],
        env={**os.environ, IN_NETNS: "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_the_documented_sysctl_patch_renders_and_validates(tmp_path: Path) -> None:
    """docs/kubernetes.md's patch setting ``net.ipv4.tcp_migrate_req`` on the pods (the variant tested above)."""
    (patch,) = [p for p in docs_patches() if "tcp_migrate_req" in p]
    for target in ("overlays/single", "overlays/ha"):
        objects = render_patched(target, patch, tmp_path / target)
        for obj in objects:
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        pod = one(objects, "StatefulSet", "specman")["spec"]["template"]["spec"]
        assert pod["securityContext"]["sysctls"] == [{"name": "net.ipv4.tcp_migrate_req", "value": "1"}]
        assert pod["securityContext"]["runAsUser"] == 10001  # merged into, not replaced
