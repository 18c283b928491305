"""The console's jobs against a real ``specman serve`` (the SCAR endpoint), and the documentation's own clients.

The documentation's script hard-codes the SCAR endpoint ``https://specman-service.hubble-system.svc.cluster.local:8443``;
the console reaches it as a pod behind a proxy would: ``HTTPS_PROXY`` is a local CONNECT proxy that maps that name
to the ``specman serve`` on 127.0.0.1, whose certificate carries the name and whose CA is the trust store
(``SSL_CERT_FILE``).  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.console import (
    ADMIN_PASSWORD,
    CLUSTER_SCAR,
    EXAMPLES,
    ConnectProxy,
    ConsoleProcess,
    ScarServer,
    clean_env,
    start_console,
    start_scar,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_SCRIPT = SHARED / "seeds" / "scar-registry-update.sh"
VALIDATE_STEPS = SHARED / "seeds" / "validate-steps.txt"
JOBS = ("syncCloudInstanceTypesData", "syncCloudStorageTypesData")
CLOUDS = ("aws", "azure", "gcp", "vsphere")


def _expected(kind_file: str) -> dict[str, list[dict[str, Any]]]:
    root = EXAMPLES / "cloud-types"
    return {cloud: json.loads((root / cloud / kind_file).read_text()) for cloud in CLOUDS}


INSTANCE_TYPES = _expected("instance-types.json")
STORAGE_TYPES = _expected("storage-types.json")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleProcess, ScarServer, ConnectProxy]]:
    work = tmp_path_factory.mktemp("jobs")
    scar = start_scar(work)
    proxy = ConnectProxy({f"{CLUSTER_SCAR}:8443": scar.port})
    env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost", "SSL_CERT_FILE": str(scar.ca)}
    try:
        console = start_console(work / "data", env=env)
    except BaseException:
        scar.stop()
        proxy.close()
        raise
    try:
        yield console, scar, proxy
    finally:
        console.stop()
        scar.stop()
        proxy.close()


def _wait_runs(console: ConsoleProcess, token: str, job: str, count: int) -> list[dict[str, Any]]:
    """The job's runs once at least ``count`` exist and none is queued or running."""
    deadline = time.monotonic() + 90
    with console.client(token) as c:
        while True:
            runs: list[dict[str, Any]] = c.get(f"/v1/jobs/internal/{job}").json()["runs"]
            if len(runs) >= count and all(r["state"] in ("succeeded", "failed") for r in runs):
                return runs
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)


def _put_scar(console: ConsoleProcess, token: str, **body: Any) -> None:
    with console.client(token) as c:
        r = c.put("/v1/system/config/scar", json={"username": "", "password": "", **body})
        assert r.status_code == 204, r.text


def _run_both(console: ConsoleProcess, token: str) -> dict[str, dict[str, Any]]:
    with console.client(token) as c:
        before = {job: len(c.get(f"/v1/jobs/internal/{job}").json()["runs"]) for job in JOBS}
        assert c.post(f"/v1/jobs/internal/{JOBS[0]}/run").status_code == 204
        assert c.get(f"/v1/jobs/internal/{JOBS[1]}/run").status_code == 204  # GET, as the script sends it
    return {job: _wait_runs(console, token, job, before[job] + 1)[0] for job in JOBS}


class _Scar:
    """A plain static HTTP server over a directory (a SCAR file server), optionally held back by an event."""

    def __init__(self, root: Path) -> None:
        self.release = threading.Event()
        self.release.set()
        release = self.release

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                release.wait(60)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_jobs_ingest_from_specman_serve_over_tls(setup: tuple[ConsoleProcess, ScarServer, ConnectProxy]) -> None:
    console, scar, _ = setup
    token = console.login()
    _put_scar(console, token, endpoint=scar.url, caCert=scar.ca.read_text())
    runs = _run_both(console, token)
    for job, expected in zip(JOBS, (INSTANCE_TYPES, STORAGE_TYPES), strict=True):
        assert runs[job]["state"] == "succeeded", runs[job]
        assert runs[job]["items"] == sum(len(v) for v in expected.values())
        assert runs[job]["startedAt"] and runs[job]["endedAt"]
    with console.client(token) as c:
        for cloud in CLOUDS:
            got = c.get(f"/v1/clouds/{cloud}/instanceTypes").json()
            assert got["items"] == INSTANCE_TYPES[cloud]
            assert c.get(f"/v1/clouds/{cloud}/storageTypes").json()["items"] == STORAGE_TYPES[cloud]
        clouds = c.get("/v1/clouds").json()["items"]
        assert [x["cloud"] for x in clouds] == list(CLOUDS)
        assert c.get("/v1/clouds/nowhere/instanceTypes").status_code == 404
        listed = c.get("/v1/jobs/internal").json()["items"]
        assert {j["name"]: j["lastRun"]["state"] for j in listed} == dict.fromkeys(JOBS, "succeeded")

    # an endpoint whose certificate is not trusted (the console itself: its own CA), then one without the files
    _put_scar(console, token, endpoint=console.base)
    failed = _run_both(console, token)
    assert failed[JOBS[0]]["state"] == "failed"
    assert "certificate verification failed" in failed[JOBS[0]]["error"]
    _put_scar(console, token, endpoint=console.base, insecureSkipVerify=True)
    failed = _run_both(console, token)
    assert failed[JOBS[1]]["error"] == (
        f"cloud-types/index.json: GET {console.base}/cloud-types/index.json: HTTP 404 not found"
    )
    with console.client(token) as c:  # the data of the last good run stays
        assert c.get("/v1/clouds/aws/instanceTypes").json()["items"] == INSTANCE_TYPES["aws"]


def test_bad_data_fails_the_job_and_keeps_the_data(
    setup: tuple[ConsoleProcess, ScarServer, ConnectProxy], tmp_path: Path
) -> None:
    console, scar, _ = setup
    token = console.login()
    _put_scar(console, token, endpoint=scar.url, caCert=scar.ca.read_text())
    assert all(r["state"] == "succeeded" for r in _run_both(console, token).values())

    root = tmp_path / "scar"
    shutil.copytree(EXAMPLES / "cloud-types", root / "cloud-types")
    broken = json.loads((root / "cloud-types/gcp/instance-types.json").read_text())
    broken[3]["vcpu"] = "two"
    (root / "cloud-types/gcp/instance-types.json").write_text(json.dumps(broken))
    (root / "cloud-types/azure/storage-types.json").write_text("{not json")
    static = _Scar(root)
    try:
        _put_scar(console, token, endpoint=static.url + "/")
        runs = _run_both(console, token)
    finally:
        static.close()
    assert runs[JOBS[0]]["state"] == "failed"
    assert runs[JOBS[0]]["error"] == (
        "cloud-types/gcp/instance-types.json: [3].vcpu: must be an integer >= 1, not 'two'"
    )
    assert runs[JOBS[1]]["state"] == "failed"
    assert runs[JOBS[1]]["error"].startswith("cloud-types/azure/storage-types.json: not valid JSON")
    with console.client(token) as c:
        assert c.get("/v1/clouds/gcp/instanceTypes").json()["items"] == INSTANCE_TYPES["gcp"]
        assert c.get("/v1/clouds/azure/storageTypes").json()["items"] == STORAGE_TYPES["azure"]


def test_concurrent_triggers_coalesce(setup: tuple[ConsoleProcess, ScarServer, ConnectProxy], tmp_path: Path) -> None:
    console, _, _ = setup
    token = console.login()
    root = tmp_path / "scar"
    shutil.copytree(EXAMPLES / "cloud-types", root / "cloud-types")
    static = _Scar(root)
    job = JOBS[1]
    try:
        _put_scar(console, token, endpoint=static.url)
        with console.client(token) as c:
            before = len(c.get(f"/v1/jobs/internal/{job}").json()["runs"])
            static.release.clear()  # the first run blocks on its first request until released
            for _ in range(6):
                assert c.post(f"/v1/jobs/internal/{job}/run").status_code == 204
            states = [r["state"] for r in c.get(f"/v1/jobs/internal/{job}").json()["runs"][:2]]
            assert states == ["queued", "running"]
            static.release.set()
        runs = _wait_runs(console, token, job, before + 2)
    finally:
        static.close()
    new = runs[: len(runs) - before]
    assert [r["state"] for r in new] == ["succeeded", "succeeded"]  # one running + one queued: 6 triggers, 2 runs


def _bash_env(console: ConsoleProcess, tmp_path: Path) -> dict[str, str]:
    stub = tmp_path / "bin"
    stub.mkdir(parents=True)
    (stub / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (stub / "sleep").chmod(0o755)
    env = clean_env({"PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"})
    env["CURL_CA_BUNDLE"] = str(console.ca)
    return env


def test_documentation_script_runs_unmodified(
    setup: tuple[ConsoleProcess, ScarServer, ConnectProxy], tmp_path: Path
) -> None:
    console, _, proxy = setup
    assert shutil.which("jq") and shutil.which("curl"), "apt-get install jq curl"
    token = console.login()
    with console.client(token) as c:
        before = {job: len(c.get(f"/v1/jobs/internal/{job}").json()["runs"]) for job in JOBS}
    proc = subprocess.run(
        ["bash", str(SEED_SCRIPT), console.base, "admin", ADMIN_PASSWORD],
        capture_output=True,
        text=True,
        timeout=120,
        env=_bash_env(console, tmp_path),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines == [
        "Success Setting the Scar Repo. Waiting for a minute to get the changes syncing",
        "Started Syncing Storage Type from the palette Service",
        "Started Syncing Storage Type from the palette Service",
        "Wait for 5 minute for the sync process to complete.",
    ], proc.stdout
    for job in JOBS:
        run = _wait_runs(console, token, job, before[job] + 1)[0]
        assert run["state"] == "succeeded", run.get("error")
        assert run["items"] > 0
    assert f"CONNECT {CLUSTER_SCAR}:8443" in proxy.seen

    steps = VALIDATE_STEPS.read_text()
    steps = steps.replace("<cluster-url>", console.base).replace("<sys-admin-password>", ADMIN_PASSWORD)
    validate = subprocess.run(
        ["bash", "-c", steps],
        capture_output=True,
        text=True,
        timeout=60,
        env=_bash_env(console, tmp_path / "v"),
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    shown = json.loads(validate.stdout)
    assert shown["endpoint"] == f"https://{CLUSTER_SCAR}:8443"
    assert shown["username"] == ""
    assert "password" not in shown
    assert ADMIN_PASSWORD not in console.log()


def test_two_workers_share_the_jobs(tmp_path: Path) -> None:
    root = tmp_path / "scar"
    shutil.copytree(EXAMPLES / "cloud-types", root / "cloud-types")
    static = _Scar(root)
    console = start_console(tmp_path / "data", "--workers", "2", tls=False)
    try:
        token = console.login()
        _put_scar(console, token, endpoint=static.url)
        for i in range(12):  # a new connection each: both workers take triggers
            with console.client(token) as fresh:
                method = "GET" if i % 2 else "POST"
                assert fresh.request(method, f"/v1/jobs/internal/{JOBS[0]}/run").status_code == 204
        runs = _wait_runs(console, token, JOBS[0], 1)
        assert all(r["state"] == "succeeded" for r in runs), runs
        assert all(r["items"] == 84 for r in runs)
        assert 1 <= len(runs) <= 12
        with console.client(token) as c:
            assert c.get("/v1/clouds/vsphere/instanceTypes").json()["items"] == INSTANCE_TYPES["vsphere"]
    finally:
        console.stop()
        static.close()
