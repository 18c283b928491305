"""``specman serve --console``: the source is the registry the console marks "Contains Spectro Manifests".

Real processes: ``specman console`` (HTTPS, SQLite), two real ``docker-registry`` instances (TLS + htpasswd), and
``specman serve`` following the console — switching registries and credentials without a restart, and serving
what it has when the console is down.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference
from specman.oci.reference import DEFAULT_REPOSITORY
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.console import ConsoleProcess, start_console
from tests.fixtures.registry import Registry
from tests.fixtures.serve import poll
from tests.test_cli import one_line_error, run
from tests.test_sync import push_tree

SERVICE_TOKEN = "svc-Token-for-serve-9"


def _fill(registry: Registry, tag: str, marker: str, work: Path) -> None:
    assert registry.ca_file is not None
    options = RegistryOptions(username=registry.username, password=registry.password, ca_file=str(registry.ca_file))
    repo = open_repository(parse_reference(f"{registry.host}/{DEFAULT_REPOSITORY}"), options)
    try:
        push_tree(repo, tag, {"where.txt": marker}, work)
    finally:
        repo.close()


def _registry_body(registry: Registry, password: str | None = None) -> dict[str, object]:
    assert registry.ca_file is not None
    return {
        "name": "spectro",
        "endpoint": registry.url,
        "username": registry.username,
        "password": password or registry.password,
        "caCert": registry.ca_file.read_text(),
        "containsSpectroManifests": True,
    }


@pytest.fixture
def console(tmp_path: Path) -> ConsoleProcess:
    token_file = tmp_path / "service-token"
    token_file.write_text(SERVICE_TOKEN + "\n")
    server = start_console(tmp_path / "console", "--service-token-file", str(token_file))
    yield server  # type: ignore[misc]
    server.stop()


def test_serve_follows_the_console(
    console: ConsoleProcess, registry_factory: RegistryFactory, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    first, second = registry_factory("htpasswd"), registry_factory("htpasswd")
    _fill(first, "4.5.13", "first registry", tmp_path)
    _fill(second, "4.5.15", "second registry", tmp_path)
    admin = console.login()
    with console.client(admin) as c:
        uid = c.post("/v1/registries/oci", json=_registry_body(first)).json()["uid"]

    (tmp_path / "token").write_text(SERVICE_TOKEN)
    args = ["--console", console.base, "--console-token-file", str(tmp_path / "token")]
    args += ["--console-ca-file", str(console.ca)]
    server = serve_factory(args, tmp_path / "data", extra_args=["--interval", "1s"])
    with server.client() as client:
        assert poll(lambda: client.get("/where.txt").text == "first registry"), server.log_tail()
        status = client.get("/_specman/status").json()
        assert status["source"] == f"console:{console.base}"
        assert status["sync"]["source"] == f"{first.host}/{DEFAULT_REPOSITORY}"

        # the operator points the console at another registry: followed at the next sync, no restart
        with console.client(admin) as c:
            assert c.put(f"/v1/registries/oci/{uid}", json=_registry_body(second)).status_code in (200, 204)
        assert poll(lambda: client.get("/where.txt").text == "second registry"), server.log_tail()
        assert set(client.get("/_specman/status").json()["tags"]) == {"4.5.15"}

        # wrong credentials in the console: the sync fails with the registry's reason, the view stays
        with console.client(admin) as c:
            c.put(f"/v1/registries/oci/{uid}", json=_registry_body(second, password="wrong-Password-1"))
        assert poll(lambda: "unauthorized" in (client.get("/_specman/status").json()["sync"]["last_error"] or ""))
        assert client.get("/where.txt").text == "second registry"

        # the console goes away: serving goes on from disk, the last good registry keeps being synced
        with console.client(admin) as c:
            c.put(f"/v1/registries/oci/{uid}", json=_registry_body(second))
        assert poll(lambda: client.get("/_specman/status").json()["sync"]["state"] == "ok")
        console.stop()
        _fill(second, "4.6.0", "pushed while the console is down", tmp_path)
        assert poll(lambda: client.get("/where.txt").text == "pushed while the console is down"), server.log_tail()
        assert client.get("/_specman/readyz").status_code == 200

    log = server.log_text()
    assert 'msg="Source from the console"' in log and "Console unreachable" in log
    for secret in (first.password, second.password, SERVICE_TOKEN):
        assert secret and secret not in log


def test_console_options_are_checked(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("x")
    data = ["--data-dir", str(tmp_path / "d")]
    cases = [
        ((*data,), "missing REPO"),
        (("--console", "https://c:8444", *data), "--console-token-file"),
        (("r.example.com/a", "--console", "https://c:8444", "--console-token-file", str(token), *data), "not both"),
        (("--console", "ftp://c", "--console-token-file", str(token), *data), "expected https://HOST"),
        (("--console", "https://c", "--console-token-file", str(token), "-u", "x", *data), "come from the console"),
    ]
    for args, message in cases:
        proc = run("sync", *args, "--once")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in one_line_error(proc), args
