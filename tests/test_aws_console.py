"""The console's pack registry of ``authType`` ``ecr`` (Palette's ECR form: access key id, secret access key, a role
to assume with STS and its external ID): stored with the secret sealed, validated for real against moto (STS, ECR)
and the real docker-registry, and followed by ``specman serve --console`` with no AWS secret of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference
from specman.oci.reference import DEFAULT_REPOSITORY
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.aws import ACCOUNT, MOTO_PASSWORD, MotoServer, aws_env
from tests.fixtures.console import ConsoleProcess, start_console
from tests.fixtures.registry import Registry
from tests.fixtures.serve import poll
from tests.test_sync import push_tree

SERVICE_TOKEN = "svc-Token-for-aws-17"
SECRET = "console-Secret-Access-Key-17"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/palette-ecr"


@pytest.fixture(scope="module")
def aws_console(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[ConsoleProcess]:
    """A console whose own AWS environment has no credentials (APIs at moto, region us-east-1)."""
    tmp = tmp_path_factory.mktemp("aws-console")
    token_file = tmp / "service-token"
    token_file.write_text(SERVICE_TOKEN + "\n")
    env = aws_env(tmp / "aws", moto.url, AWS_REGION="us-east-1", HOME=str(tmp / "home"))
    server = start_console(tmp / "console", "--service-token-file", str(token_file), env=env)
    yield server
    server.stop()


def _ecr_body(registry: Registry, **extra: Any) -> dict[str, Any]:
    assert registry.ca_file is not None
    body = {
        "name": "ecr",
        "endpoint": registry.url,
        "caCert": registry.ca_file.read_text(),
        "authType": "ecr",
        "awsAccessKeyId": "AKIACONSOLEKEY000017",
        "awsSecretAccessKey": SECRET,
        "awsRoleArn": ROLE,
        "awsExternalId": "tenant-17",
        "containsSpectroManifests": True,
    }
    body.update(extra)
    return body


def test_ecr_registry_in_the_console(
    aws_console: ConsoleProcess,
    registry_factory: RegistryFactory,
    serve_factory: ServeFactory,
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    registry = registry_factory("htpasswd", users={"AWS": MOTO_PASSWORD})
    options = RegistryOptions(username="AWS", password=MOTO_PASSWORD, ca_file=str(registry.ca_file))
    repo = open_repository(parse_reference(f"{registry.host}/{DEFAULT_REPOSITORY}"), options)
    try:
        push_tree(repo, "4.5.13", {"where.txt": "from ECR"}, tmp_path)
    finally:
        repo.close()

    admin = aws_console.login()
    with aws_console.client(admin) as c:
        created = c.post("/v1/registries/oci", json=_ecr_body(registry, name="ecr-main"))
        assert created.status_code == 201, created.text
        uid = created.json()["uid"]
        shown = c.get(f"/v1/registries/oci/{uid}").json()
        assert shown["authType"] == "ecr" and shown["awsSecretAccessKeySet"] is True
        assert shown["awsRoleArn"] == ROLE and shown["awsExternalId"] == "tenant-17"
        assert SECRET not in c.get("/v1/registries/oci").text
        result = c.post(f"/v1/registries/oci/{uid}/validate").json()
        assert result["ok"], result
        credentials = next(check for check in result["checks"] if check["name"] == "credentials")
        assert "password from AWS ECR" in credentials["message"] and ROLE in credentials["message"]
        # an edit without the secret keeps it (the form leaves it empty)
        kept = {k: v for k, v in _ecr_body(registry, name="ecr-main").items() if k != "awsSecretAccessKey"}
        assert c.put(f"/v1/registries/oci/{uid}", json=kept).json()["awsSecretAccessKeySet"] is True
        assert c.post("/v1/registries/oci/validate", json={**kept, "uid": uid}).json()["ok"]
    assert SECRET.encode() not in (aws_console.data_dir / "console.db").read_bytes()  # sealed at rest

    (tmp_path / "token").write_text(SERVICE_TOKEN)
    args = ["--console", aws_console.base, "--console-token-file", str(tmp_path / "token")]
    args += ["--console-ca-file", str(aws_console.ca)]
    env = aws_env(tmp_path / "aws-serve", moto.url, AWS_REGION="us-east-1", HOME=str(tmp_path / "home"))
    server = serve_factory(args, tmp_path / "data", extra_args=["--interval", "1s"], env=env)
    with server.client() as client:
        assert poll(lambda: client.get("/where.txt").text == "from ECR"), server.log_tail()
    assert SECRET not in server.log_text() and MOTO_PASSWORD not in server.log_text()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "x"}, "password"),
        ({"username": "AWS"}, "username"),
        ({"awsRoleArn": "arn:aws:iam::12:role/x"}, "awsRoleArn"),
        ({"awsAccessKeyId": "not a key"}, "awsAccessKeyId"),
        ({"awsAccessKeyId": "", "awsRoleArn": ""}, "awsAccessKeyId"),  # a secret without its key
        ({"authType": "gcr"}, "authType"),
        ({"authType": "basic"}, "awsAccessKeyId"),  # AWS fields on a basic registry
    ],
)
def test_ecr_form_is_checked(
    aws_console: ConsoleProcess, tls_registry: Registry, change: dict[str, str], field: str
) -> None:
    registry = tls_registry
    with aws_console.client(aws_console.login()) as c:
        answer = c.post("/v1/registries/oci", json=_ecr_body(registry, **change))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert SECRET not in answer.text


def test_validate_without_aws_credentials(aws_console: ConsoleProcess, registry_factory: RegistryFactory) -> None:
    """No keys in the form and none in the console's environment: the credentials check names AWS."""
    registry = registry_factory("htpasswd", users={"AWS": MOTO_PASSWORD})
    body = _ecr_body(registry, awsAccessKeyId="", awsSecretAccessKey="", awsRoleArn="", awsExternalId="")
    with aws_console.client(aws_console.login()) as c:
        result = c.post("/v1/registries/oci/validate", json=body).json()
    assert not result["ok"]
    checks = {check["name"]: check for check in result["checks"]}
    assert checks["credentials"]["message"].startswith("AWS: no credentials found"), checks
    assert checks["reachable"]["message"].startswith("not checked"), checks
