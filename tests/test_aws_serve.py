"""``specman serve`` of an ECR-style repository: it outlives several password lifetimes with no failed sync and no
password in its configuration, and a sync failing on AWS keeps the last good view served and recovers by itself.

The registry is the real docker-registry with an htpasswd holding only ``AWS`` and the password the ECR stand-in
minted last (``tests/fixtures/aws.py``: each GetAuthorizationToken mints a new one, short-lived, and the htpasswd is
rotated to it; an expired one is replaced by a random password).  AWS credentials come from a container-credentials
server (EKS Pod Identity's protocol), so the process holds no AWS secret either: only a token file path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import ContainerCredentialsServer, EcrStandIn, aws_env, clean_aws_environ
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess, poll

RegistryFactory = Callable[..., Registry]
ServeFactory = Callable[..., ServeProcess]


class Ecr:
    """A registry, the ECR stand-in rotating its password, the Pod Identity server, and the environment to use."""

    def __init__(self, registry: Registry, stand_in: EcrStandIn, pod: ContainerCredentialsServer, env: dict[str, str]):
        self.registry = registry
        self.stand_in = stand_in
        self.pod = pod
        self.env = env
        self.name = f"aws-serve/{uuid.uuid4().hex[:10]}"

    @property
    def repo(self) -> str:
        return f"{self.registry.host}/{self.name}"

    def options(self) -> list[str]:
        return ["--provider", "aws", "--ca-file", str(self.registry.ca_file)]

    def push(self, tmp: Path, tag: str, text: str) -> None:
        tree = tmp / f"tree-{tag}"
        tree.mkdir()
        (tree / "version.txt").write_text(text)
        env = {**clean_aws_environ(os.environ), **self.env}
        command = [sys.executable, "-m", "specman", "push", str(tree), f"{self.repo}:{tag}", *self.options()]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def ecr(
    registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Ecr]:
    lifetime = getattr(request, "param", 3.0)
    registry = registry_factory("htpasswd", users={"AWS": "placeholder"})
    stand_in = EcrStandIn(registry.config_file.parent / "htpasswd", lifetime=lifetime).start()
    token = "pod-" + uuid.uuid4().hex
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(token)
    pod = ContainerCredentialsServer(token).start()
    env = aws_env(
        tmp_path / "aws",
        stand_in.url,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{pod.url}/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
        AWS_REGION="eu-west-1",
    )
    for key in list(os.environ):
        if key.startswith(("AWS_", "SPECMAN_")):
            monkeypatch.delenv(key)
    try:
        yield Ecr(registry, stand_in, pod, env)
    finally:
        stand_in.stop()
        pod.stop()


def _status(server: ServeProcess) -> dict[str, Any]:
    with server.client() as client:
        body: dict[str, Any] = client.get("/_specman/status").json()
    return body


def _runs(server: ServeProcess) -> dict[str, float]:
    with server.client() as client:
        text = client.get("/metrics").text
    found = re.findall(r'^specman_sync_runs_total\{[^}]*result="(\w+)"[^}]*\}\s+(\S+)', text, re.M)
    assert found, text[:3000]
    return {result: float(value) for result, value in found}


def _served(server: ServeProcess, tag: str) -> str | None:
    with server.client() as client:
        response = client.get(f"/_specman/versions/{tag}/version.txt")
    return response.text if response.status_code == 200 else None


def test_serve_outlives_several_password_lifetimes(ecr: Ecr, serve_factory: ServeFactory, tmp_path: Path) -> None:
    ecr.push(tmp_path, "1.0.0", "one")
    server = serve_factory(
        [ecr.repo, *ecr.options()], tmp_path / "data", extra_args=["--interval", "0.4s"], env=ecr.env
    )
    assert poll(lambda: _served(server, "1.0.0") == "one", timeout=60), server.log_tail()
    minted = len(ecr.stand_in.minted)
    started = time.monotonic()
    time.sleep(3 * ecr.stand_in.lifetime + 1)  # over three lifetimes of the password
    ecr.push(tmp_path, "2.0.0", "two")  # the registry's password moved on: serve must follow it
    assert poll(lambda: _served(server, "2.0.0") == "two", timeout=60), server.log_tail()
    assert time.monotonic() - started > 3 * ecr.stand_in.lifetime
    # refreshed as it aged (about every half lifetime, fewer on a loaded machine whose syncs run late)
    assert len(ecr.stand_in.minted) - minted >= 2
    runs = _runs(server)
    assert runs.get("failure", 0) == 0 and runs.get("partial", 0) == 0, (runs, server.log_tail())
    assert runs.get("success", 0) >= 3, runs
    assert "Sync failed" not in server.log_text()
    sync = _status(server)["sync"]
    assert sync["state"] == "ok" and sync["consecutive_failures"] == 0, sync
    # no password anywhere in its configuration: command line and environment carry none
    command = " ".join(server.proc.args if isinstance(server.proc.args, list) else [str(server.proc.args)])
    assert "password" not in command.lower()
    assert not any("PASSWORD" in key or "SECRET" in key for key in ecr.env)
    assert not any(password in server.log_text() for password in ecr.stand_in.minted)


def test_failing_sync_keeps_serving_and_recovers(ecr: Ecr, serve_factory: ServeFactory, tmp_path: Path) -> None:
    ecr.stand_in.lifetime = 3600.0
    ecr.push(tmp_path, "1.0.0", "one")
    server = serve_factory(
        [ecr.repo, *ecr.options()], tmp_path / "data", extra_args=["--interval", "0.5s"], env=ecr.env
    )
    assert poll(lambda: _served(server, "1.0.0") == "one", timeout=60), server.log_tail()
    ecr.stand_in.deny = True  # the role lost ecr:GetAuthorizationToken ...
    ecr.stand_in.revoke_current()  # ... and the password it had stops working

    def failing_on_aws() -> bool:
        sync = _status(server)["sync"]
        return sync["state"] == "failing" and str(sync.get("last_error")).startswith("AWS:")

    assert poll(failing_on_aws, timeout=60), (_status(server), server.log_tail())  # a sync under way may fail first
    sync = _status(server)["sync"]
    assert sync["last_error"].startswith("AWS: ECR GetAuthorizationToken for"), sync
    assert "AccessDeniedException" in sync["last_error"] and "\n" not in sync["last_error"]
    assert _served(server, "1.0.0") == "one"  # the last good view stays served
    ecr.stand_in.deny = False
    ecr.push(tmp_path, "2.0.0", "two")
    assert poll(lambda: _served(server, "2.0.0") == "two", timeout=90), server.log_tail()
    assert poll(lambda: _status(server)["sync"]["state"] == "ok", timeout=30), _status(server)
