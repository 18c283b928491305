"""ECR passwords from AWS credentials (``--provider aws``, automatic for ECR hosts), against real components: moto in
server mode for STS, ECR and IMDS, a container-credentials server for Pod Identity, the real docker-registry with an
htpasswd holding exactly the ``AWS`` user and the password GetAuthorizationToken returned.  Nothing reaches AWS:
every test runs with ``aws_env`` (all endpoints on 127.0.0.1, IMDS off unless moto plays it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from specman.errors import AuthorizationError, NotFoundError, ProviderError, UsageError
from specman.migrate.consoleops import registry_body
from specman.oci import RegistryOptions, parse_reference
from specman.oci.providers import AwsProvider, AwsSettings, parse_ecr_host
from specman.oci.repository import open_repository
from tests.fixtures.aws import (
    ACCOUNT,
    MOTO_PASSWORD,
    ContainerCredentialsServer,
    EcrStandIn,
    MotoServer,
    aws_env,
    clean_aws_environ,
)
from tests.fixtures.faultproxy import Fault, FaultProxy
from tests.fixtures.registry import Registry

RegistryFactory = Callable[..., Registry]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/specman"


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Replace this process's AWS environment by ``env`` (for in-process providers)."""

    def apply(env: dict[str, str]) -> None:
        for key in list(os.environ):
            if key.startswith(("AWS_", "BOTO_", "SPECMAN_")):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return apply


@pytest.fixture
def ecr_registry(registry_factory: RegistryFactory) -> Registry:
    """A TLS docker-registry whose only user is ``AWS`` with moto's GetAuthorizationToken password."""
    return registry_factory("htpasswd", users={"AWS": MOTO_PASSWORD})


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    outer = {k: v for k, v in clean_aws_environ(os.environ).items() if not k.startswith("SPECMAN_")}
    full = {**outer, **env}
    return subprocess.run(
        [sys.executable, "-m", "specman", *args], capture_output=True, text=True, timeout=120, env=full, check=False
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -- host names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", ("123456789012", "us-east-1", False, False)),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", ("123456789012", "us-east-1", False, False)),
        ("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn", ("210987654321", "cn-north-1", False, False)),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", ("123456789012", "us-gov-west-1", True, False)),
        ("123456789012.dkr-ecr.us-west-2.on.aws", ("123456789012", "us-west-2", False, True)),
        ("123456789012.dkr-ecr-fips.us-gov-east-1.on.aws", ("123456789012", "us-gov-east-1", True, True)),
        ("123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM", ("123456789012", "eu-west-1", False, False)),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.fake.example.com", None),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
        ("public.ecr.aws", None),
        ("127.0.0.1:5000", None),
        ("registry.example.com", None),
    ],
)
def test_ecr_host_pattern(host: str, expected: tuple[str, str, bool, bool] | None) -> None:
    parsed = parse_ecr_host(host)
    got = None if parsed is None else (parsed.account, parsed.region, parsed.fips, parsed.dualstack)
    assert got == expected


def test_provider_choice(isolated: Callable[[dict[str, str]], None], tmp_path: Path) -> None:
    isolated(aws_env(tmp_path, "http://127.0.0.1:9"))
    ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert isinstance(RegistryOptions().provider_for(ecr), AwsProvider)
    assert RegistryOptions().provider_for("127.0.0.1:5000") is None
    assert RegistryOptions(username="AWS", password="x").provider_for(ecr) is None  # explicit credentials win
    assert RegistryOptions(provider="generic").provider_for(ecr) is None
    assert isinstance(RegistryOptions(provider="aws").provider_for("127.0.0.1:5000"), AwsProvider)
    with pytest.raises(UsageError, match="--provider aws"):
        RegistryOptions(provider="aws", username="AWS", password="x").provider_for(ecr)


def test_migrate_registers_an_ecr_registry_without_a_password(
    isolated: Callable[[dict[str, str]], None], tmp_path: Path
) -> None:
    isolated(aws_env(tmp_path, "http://127.0.0.1:9"))
    ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert RegistryOptions().provider_name(ecr) == "aws"
    assert RegistryOptions(username="u", password="p").provider_name(ecr) == "generic"
    assert RegistryOptions(password_file=tmp_path / "absent").provider_name(ecr) == "aws"  # an optional Secret
    body = registry_body(f"https://{ecr}", "AWS", "stale-password", "", False, auth_type="ecr")
    assert body["authType"] == "ecr" and body["username"] == "" and "password" not in body
    assert "authType" not in registry_body("https://r.example", "u", "p", "", False)


def test_botocore_is_not_imported_without_an_aws_registry(plain_registry: Registry, tmp_path: Path) -> None:
    code = (
        "import sys\nfrom specman.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('botocore' in sys.modules, file=sys.stderr)\n"
    )
    repo = f"{plain_registry.host}/aws/{uuid.uuid4().hex[:8]}"
    for args in (["--version"], ["tags", repo, "--plain-http"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.stderr.strip().splitlines()[-1] == "False", proc.stderr


# -- the credential chain, against moto and the real registry -------------------------------------------------------


def _push_pull_tags(env: dict[str, str], registry: Registry, tmp_path: Path, *, with_flag: bool = True) -> None:
    source = tmp_path / "tree"
    source.mkdir(exist_ok=True)
    (source / "index.json").write_text('{"aws": true}')
    repo = f"{registry.host}/aws/{uuid.uuid4().hex[:8]}"
    common = ["--ca-file", str(registry.ca_file), *(["--provider", "aws"] if with_flag else [])]
    pushed = run(env, "push", str(source), f"{repo}:1.0.0", *common)
    assert pushed.returncode == 0, pushed.stderr
    tags = run(env, "tags", repo, *common)
    assert tags.returncode == 0, tags.stderr
    assert tags.stdout.split() == ["1.0.0"]
    pulled = run(env, "pull", f"{repo}:1.0.0", str(tmp_path / "out"), *common)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "index.json").read_text() == '{"aws": true}'
    assert MOTO_PASSWORD not in pushed.stderr + tags.stderr + pulled.stderr


def test_environment_keys(moto: MotoServer, ecr_registry: Registry, tmp_path: Path) -> None:
    """Keys and session token from the environment; ``SPECMAN_PROVIDER=aws`` as the flag."""
    env = aws_env(
        tmp_path,
        moto.url,
        AWS_ACCESS_KEY_ID="AKIAENVKEY",
        AWS_SECRET_ACCESS_KEY="env-secret",
        AWS_SESSION_TOKEN="env-session-token",
        AWS_REGION="us-east-1",
        SPECMAN_PROVIDER="aws",
    )
    _push_pull_tags(env, ecr_registry, tmp_path, with_flag=False)


def test_profile_with_assume_role(moto: MotoServer, ecr_registry: Registry, tmp_path: Path) -> None:
    env = aws_env(tmp_path, moto.url, AWS_PROFILE="ecr")
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n"
    )
    Path(env["AWS_CONFIG_FILE"]).write_text(
        f"[profile ecr]\nrole_arn = {ROLE}\nsource_profile = base\nexternal_id = ext-123\nregion = eu-west-1\n"
    )
    _push_pull_tags(env, ecr_registry, tmp_path)


def _method(env: dict[str, str], isolated: Callable[[dict[str, str]], None], registry: Registry) -> str:
    """Which botocore provider gave the credentials, and that the registry took the ECR password."""
    isolated(env)
    provider = AwsProvider()
    creds = provider.credentials(registry.host)
    assert (creds.username, creds.password) == ("AWS", MOTO_PASSWORD)
    options = RegistryOptions(provider="aws", ca_file=str(registry.ca_file))
    repository = open_repository(parse_reference(f"{registry.host}/aws/none"), options)
    with pytest.raises(NotFoundError):  # an unknown repository: the registry accepted the credentials
        list(repository.tags())
    repository.close()
    session = provider._get_session("")
    credentials = session.get_credentials()
    assert credentials is not None
    return str(credentials.method)


def test_web_identity_irsa(
    moto: MotoServer, ecr_registry: Registry, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    token = tmp_path / "eks-token"
    token.write_text("header.payload.signature")
    env = aws_env(tmp_path, moto.url, AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ROLE_ARN=ROLE, AWS_REGION="us-east-1")
    assert _method(env, isolated, ecr_registry) == "assume-role-with-web-identity"


@pytest.fixture
def pod_identity(tmp_path: Path) -> Iterator[tuple[ContainerCredentialsServer, Path]]:
    token = "pod-identity-" + uuid.uuid4().hex
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(token)  # no newline: botocore refuses a header value with one
    server = ContainerCredentialsServer(token).start()
    yield server, token_file
    server.stop()


def test_pod_identity(
    moto: MotoServer,
    ecr_registry: Registry,
    tmp_path: Path,
    isolated: Callable[[dict[str, str]], None],
    pod_identity: tuple[ContainerCredentialsServer, Path],
) -> None:
    server, token_file = pod_identity
    env = aws_env(
        tmp_path,
        moto.url,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{server.url}/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
        AWS_REGION="us-east-1",
    )
    assert _method(env, isolated, ecr_registry) == "container-role"
    assert server.requests and server.requests[0]["Authorization"] == token_file.read_text()


def test_instance_metadata(
    moto: MotoServer, ecr_registry: Registry, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    env = aws_env(tmp_path, moto.url, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"{moto.url}/", AWS_REGION="us-east-1")
    del env["AWS_EC2_METADATA_DISABLED"]
    assert _method(env, isolated, ecr_registry) == "iam-role"


def test_console_keys_and_role(
    moto: MotoServer, ecr_registry: Registry, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    isolated(aws_env(tmp_path, moto.url, AWS_REGION="us-east-1"))
    settings = AwsSettings("AKIACONSOLE", "console-secret", role_arn=ROLE, external_id="tenant-1")
    provider = AwsProvider(settings)
    assert provider.credentials(ecr_registry.host).password == MOTO_PASSWORD
    credentials = provider._get_session("").get_credentials()
    assert credentials is not None
    assert credentials.method == "assume-role"
    assert credentials.get_frozen_credentials().access_key.startswith("ASIA")  # STS, not the console's key
    assert "console-secret" not in repr(provider) + repr(settings)


# -- caching and refresh ------------------------------------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[EcrStandIn]:
    server = EcrStandIn(tmp_path / "unused-htpasswd").start()
    yield server
    server.stop()


def test_token_cached_for_half_its_lifetime(
    stand_in: EcrStandIn, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    isolated(
        aws_env(tmp_path, stand_in.url, AWS_ACCESS_KEY_ID="AKIA1", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="us-east-1")
    )
    now = [0.0]
    provider = AwsProvider(clock=lambda: now[0])
    stand_in.lifetime = 43200.0
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    now[0] = time.time()
    first = provider.credentials(host)
    now[0] += 6 * 3600 - 60  # just before half of 12 h: the cached password
    assert provider.credentials(host) == first
    assert provider.token_requests == 1
    now[0] += 120  # past half its lifetime: a new one
    second = provider.credentials(host)
    assert second != first
    assert provider.token_requests == 2
    assert stand_in.requests[0]["body"] == '{"registryIds": ["123456789012"]}'
    provider.refused(host, first)  # an old password refused: the current one stays
    assert provider.credentials(host) == second
    provider.refused(host, second)  # the current one refused: a new one
    assert provider.credentials(host) not in (first, second)
    assert stand_in.requests[-1]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIA1/")
    assert "/eu-west-1/ecr/aws4_request" in stand_in.requests[-1]["Authorization"]


def test_past_expiry_is_reused_briefly(
    moto: MotoServer, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    """moto's expiresAt is 2015: reused for a short while, not fetched for every request."""
    isolated(aws_env(tmp_path, moto.url, AWS_ACCESS_KEY_ID="AKIA2", AWS_SECRET_ACCESS_KEY="s"))
    provider = AwsProvider()
    host = "111122223333.dkr.ecr.ap-south-1.amazonaws.com"
    for _ in range(5):
        assert provider.credentials(host).password == "111122223333-auth-token"
    assert provider.token_requests == 1


def test_registry_403_gets_a_fresh_password_once(
    registry_factory: RegistryFactory,
    fault_proxy_factory: Callable[[Registry], FaultProxy],
    tmp_path: Path,
    isolated: Callable[[dict[str, str]], None],
) -> None:
    """An expired password answered with 403 (as ECR does): one new token, one retry, success; a 403 that stays is
    one line naming AWS."""
    registry = registry_factory("htpasswd", tls=False, users={"AWS": "placeholder"})
    server = EcrStandIn(registry.config_file.parent / "htpasswd").start()
    try:
        proxy = fault_proxy_factory(registry)
        isolated(aws_env(tmp_path, server.url, AWS_ACCESS_KEY_ID="AKIA3", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="x-1"))
        options = RegistryOptions(provider="aws", plain_http=True)
        repository = open_repository(parse_reference(f"{proxy.host}/aws/{uuid.uuid4().hex[:8]}"), options)
        with pytest.raises(NotFoundError):  # past the credentials: the repository does not exist
            list(repository.tags())
        assert len(server.minted) == 1
        proxy.add_fault(Fault.respond(r"GET /v2/.*/tags/list", status=403, times=1))
        with pytest.raises(NotFoundError):
            list(repository.tags())
        assert len(server.minted) == 2
        proxy.add_fault(Fault.respond(r"GET /v2/.*/tags/list", status=403, times=None))
        with pytest.raises(AuthorizationError) as info:
            list(repository.tags())
        message = str(info.value)
        assert "refused the password from AWS ECR GetAuthorizationToken (HTTP 403" in message
        assert not any(password in message for password in server.minted)
        repository.close()
    finally:
        server.stop()


def test_password_refreshed_before_it_expires(
    registry_factory: RegistryFactory, tmp_path: Path, isolated: Callable[[dict[str, str]], None]
) -> None:
    """A short-lived password (2 s): the next use after half its lifetime gets a new one, with no refusal."""
    registry = registry_factory("htpasswd", tls=False, users={"AWS": "placeholder"})
    server = EcrStandIn(registry.config_file.parent / "htpasswd", lifetime=2.0).start()
    try:
        isolated(aws_env(tmp_path, server.url, AWS_ACCESS_KEY_ID="AKIA6", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="x-1"))
        options = RegistryOptions(provider="aws", plain_http=True)
        repository = open_repository(parse_reference(f"{registry.host}/aws/{uuid.uuid4().hex[:8]}"), options)
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            with pytest.raises(NotFoundError):
                list(repository.tags())
            time.sleep(0.3)
        repository.close()
        assert len(server.minted) >= 3  # about one per second over 7 s
    finally:
        server.stop()


# -- bad input and faults: one line naming AWS, never a secret, exit 1 -------------------------------------------------


def test_no_credentials_anywhere(moto: MotoServer, tmp_path: Path) -> None:
    env = aws_env(tmp_path, moto.url, HOME=str(tmp_path / "empty-home"))
    proc = run(env, "tags", "123456789012.dkr.ecr.us-east-1.amazonaws.com/spectro-packs/x")
    assert proc.returncode == 1
    line = error_line(proc)
    assert line.startswith("Error: AWS: no credentials found for registry 123456789012.dkr.ecr.us-east-1"), line


def test_credentials_rejected(moto_strict: MotoServer, tmp_path: Path) -> None:
    env = aws_env(tmp_path, moto_strict.url, AWS_ACCESS_KEY_ID="AKIAUNKNOWN", AWS_SECRET_ACCESS_KEY="top-secret-value")
    proc = run(env, "tags", "123456789012.dkr.ecr.us-east-1.amazonaws.com/spectro-packs/x")
    assert proc.returncode == 1
    line = error_line(proc)
    assert "AWS: ECR GetAuthorizationToken for 123456789012.dkr.ecr.us-east-1.amazonaws.com was refused" in line
    assert "top-secret-value" not in proc.stderr


def test_region_not_derivable(moto: MotoServer, plain_registry: Registry, tmp_path: Path) -> None:
    env = aws_env(tmp_path, moto.url, AWS_ACCESS_KEY_ID="AKIA4", AWS_SECRET_ACCESS_KEY="s")
    proc = run(env, "tags", f"{plain_registry.host}/aws/x", "--plain-http", "--provider", "aws")
    assert proc.returncode == 1
    line = error_line(proc)
    assert f"AWS: cannot tell the region of registry {plain_registry.host}" in line
    assert "AWS_REGION" in line


def test_provider_error_is_one_line_without_secret(tmp_path: Path, isolated: Callable[[dict[str, str]], Any]) -> None:
    isolated(aws_env(tmp_path, "http://127.0.0.1:9", AWS_ACCESS_KEY_ID="AKIA5", AWS_SECRET_ACCESS_KEY="hidden-5"))
    provider = AwsProvider(AwsSettings(region="us-east-1"))
    with pytest.raises(ProviderError) as info:
        provider.credentials("127.0.0.1:5000")
    assert info.value.retryable  # nothing listens on port 9: trying later may work
    assert str(info.value).startswith("AWS: ECR GetAuthorizationToken for 127.0.0.1:5000: cannot connect")
    assert "\n" not in str(info.value) and "hidden-5" not in str(info.value)
