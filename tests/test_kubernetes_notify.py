"""Registry notifications with several replicas (issue 7): one endpoint per pod, no clustering.

A notification sent to ``specman-service`` reaches one pod; the registry is configured with one endpoint per
pod instead, by the StatefulSet's stable names under the headless Service
(``https://specman-N.specman-headless.hubble-system.svc:8443/_specman/notify``; here each replica's 127.0.0.1
port stands in for its name). Two replicas of overlays/ha run with the rendered env (the notification token from
the Secret ``specman-notify-token``, the interval 1 h so that only a notification can explain a sync); a push to
the real registry reaches both at once.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.certs import Certs
from tests.fixtures.kube import Obj, PodSandbox, one, render
from tests.fixtures.registry import free_port
from tests.fixtures.serve import ServeProcess, poll

REPO = "spectro-packs/spectro-manifests/manifest"
TOKEN = "notify-token-for-tests"
WAIT = 30.0


def test_every_pod_is_notified_by_its_own_endpoint(
    registry_factory: RegistryFactory, serve_factory: ServeFactory, certs: Certs, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    objects: list[Obj] = copy.deepcopy(render("overlays/ha"))
    sts = one(objects, "StatefulSet", "specman")
    assert one(objects, "Service", sts["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    ports = [free_port() for _ in range(2)]
    endpoints = [
        {
            "name": f"specman-{index}",  # url: https://specman-{index}.specman-headless.hubble-system.svc:8443/...
            "url": f"https://127.0.0.1:{port}/_specman/notify",
            "headers": {"Authorization": [f"Bearer {TOKEN}"]},
            "timeout": "2s",
            "threshold": 3,
            "backoff": "1s",
        }
        for index, port in enumerate(ports)
    ]
    registry = registry_factory(
        "htpasswd",
        tls=False,
        users={"robot": "robot-pw"},
        notifications=endpoints,
        env={"SSL_CERT_FILE": str(certs.ca_cert)},
    )
    config = one(objects, "ConfigMap", "specman-config")["data"]
    config.update({"source": f"{registry.host}/{REPO}", "interval": "1h", "plain-http": "true"})
    secrets = {
        "spectro-manifest-registry-secrets": {"username": "robot", "password": "robot-pw"},
        "specman-tls": {"tls.crt": certs.server_cert.read_text(), "tls.key": certs.server_key.read_text()},
        "specman-notify-token": {"token": TOKEN},
    }
    replicas: list[ServeProcess] = []
    for index, port in enumerate(ports):
        pod = PodSandbox(objects, sts, "specman", tmp_path / f"specman-{index}", copy.deepcopy(secrets))
        env = pod.env()
        assert env["SPECMAN_NOTIFY_TOKEN"] == TOKEN
        replicas.append(serve_factory([], Path(env["SPECMAN_DATA_DIR"]), env=env, port=port, ca=certs.ca_cert))

    def runs(replica: ServeProcess) -> int:
        with replica.client() as client:
            return int((client.get("/_specman/status").json()["sync"] or {}).get("runs", 0))

    assert poll(lambda: all(runs(r) >= 1 for r in replicas), WAIT)  # the first sync at start (nothing yet)
    archive = tmp_path / "manifests.tgz"
    archive.write_bytes(make_tar([Entry("./0.0.0/new.json", data=b"pushed now\n")]))
    repo = open_repository(
        parse_reference(f"{registry.host}/{REPO}"), RegistryOptions("robot", "robot-pw", plain_http=True)
    )
    try:
        push_artifact(repo, archive, "0.0.0")
    finally:
        repo.close()
    for replica in replicas:  # the interval is 1 h: only the notification to this pod can have synced it
        with replica.client() as client:
            assert poll(lambda c=client: c.get("/0.0.0/new.json").status_code == 200, WAIT), replica.log_tail()
            assert client.get("/0.0.0/new.json").content == b"pushed now\n"
