"""``specman migrate`` end to end, with real processes only.

The old SCAR is a real nginx (autoindex on, HTML at ``/``, nginx's JSON format under ``/json/``) serving a copy of
the sample manifests; the target is the real ``docker-registry`` with token auth; the console and specman are real
``specman console`` / ``specman serve`` processes on 127.0.0.1.  Cases: success from the SCAR's URL, a re-run (no
second push), a file changed between push and check (no switch), a job failing after the switch (rollback), a wrong
console password (preflight, nothing changed), and a dry run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from specman.errors import NotFoundError
from specman.oci import open_target
from specman.oci.repository import RegistryOptions
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.console import ADMIN_PASSWORD, EXAMPLES, ConsoleProcess, clean_env, start_console
from tests.fixtures.nginx import ScarNginx
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess

REPO = "spectro-packs/spectro-manifests/manifest"
NOTIFY_TOKEN = "notify-t0ken-for-migrate-tests"

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (scripts/test-all)")


@dataclass
class World:
    tmp: Path
    registry: Registry
    console: ConsoleProcess
    serve: ServeProcess
    scar: ScarNginx
    scar_root: Path
    files: dict[str, Path]

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{REPO}"

    def args(self, *extra: str, source: str | None = None) -> list[str]:
        return [
            "migrate",
            "--from",
            source or self.scar.url("/"),
            "--to",
            self.ref,
            "--console",
            self.console.base,
            "--console-ca-file",
            str(self.console.ca),
            "--console-password-file",
            str(self.files["console_pw"]),
            "--specman",
            f"https://127.0.0.1:{self.serve.port}",
            "--specman-ca-file",
            str(self.serve.ca),
            "-u",
            str(self.registry.username),
            "--password-file",
            str(self.files["registry_pw"]),
            "--ca-file",
            str(self.registry.ca_file),
            "--timeout",
            "60",
            "--yes",
            "--json",
            *extra,
        ]

    def migrate(self, *extra: str, source: str | None = None, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "specman", *self.args(*extra, source=source)],
            capture_output=True,
            text=True,
            env=clean_env(env),
            timeout=240,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def scar_config(self) -> dict[str, Any] | None:
        with self.console.client(self.console.login()) as c:
            r = c.get("/v1/system/config/scar")
        return None if r.status_code == 404 else r.json()

    def registries(self) -> list[dict[str, Any]]:
        with self.console.client(self.console.login()) as c:
            items: list[dict[str, Any]] = c.get("/v1/registries/oci").json()["items"]
            return items

    def tags(self) -> list[str]:
        options = RegistryOptions(
            username=self.registry.username, password=self.registry.password, ca_file=str(self.registry.ca_file)
        )
        repo = open_target(self.ref, options, default_tag=None).repository
        try:
            return list(repo.tags())
        except NotFoundError:
            return []
        finally:
            repo.close()

    def secrets(self) -> list[str]:
        return [ADMIN_PASSWORD, str(self.registry.password), NOTIFY_TOKEN]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def clean(self, world: World) -> None:
        for secret in world.secrets():
            assert secret not in self.stdout + self.stderr


@pytest.fixture
def world(tmp_path: Path, registry_factory: RegistryFactory, serve_factory: ServeFactory) -> Iterator[World]:
    registry = registry_factory("token")
    files = {"console_pw": tmp_path / "console-pw", "registry_pw": tmp_path / "registry-pw", "notify": tmp_path / "nt"}
    files["console_pw"].write_text(ADMIN_PASSWORD + "\n")
    files["registry_pw"].write_text(f"{registry.password}\n")
    files["notify"].write_text(NOTIFY_TOKEN + "\n")
    scar_root = tmp_path / "www"
    shutil.copytree(EXAMPLES, scar_root)
    scar = ScarNginx(tmp_path / "nginx", scar_root).start()
    console = start_console(tmp_path / "console")
    serve = serve_factory(
        [registry.host + "/" + REPO, "--ca-file", str(registry.ca_file), "-u", str(registry.username)],
        tmp_path / "serve",
        extra_args=[
            *("--password-file", str(files["registry_pw"]), "--interval", "2s"),
            *("--notify-token-file", str(files["notify"])),
        ],
    )
    try:
        yield World(tmp_path, registry, console, serve, scar, scar_root, files)
    finally:
        console.stop()
        scar.stop()


def test_migrates_from_the_scar_url_and_reruns_without_pushing(world: World) -> None:
    old = "http://old-scar.example:8080"
    with world.console.client(world.console.login()) as c:
        assert (
            c.put("/v1/system/config/scar", json={"endpoint": old, "username": "", "password": ""}).status_code == 204
        )

    first = world.migrate("--notify-token-file", str(world.files["notify"]))
    assert first.code == 0, first.stderr
    first.clean(world)
    s = first.summary
    assert s["ok"] and s["pushed"] and s["files"] == 105
    assert s["parity"] == {
        "ok": True,
        "files": 105,
        "bytes": s["parity"]["bytes"],
        "missing": [],
        "different": [],
        "extra": [],
        "indexPages": [],
    }
    assert [j["state"] for j in s["jobs"]] == ["succeeded", "succeeded"]
    assert s["scarBefore"] == old
    assert "Preflight (nothing is changed yet)" in first.stderr
    for name in ("source", "cloud types", "registry", "console", "console registry", "specman", "disk"):
        assert f"ok   {name}: " in first.stderr, name
    # the console now points at specman and holds the registry, flagged and validated
    scar = world.scar_config()
    assert scar is not None and scar["endpoint"] == f"https://127.0.0.1:{world.serve.port}"
    (registry,) = world.registries()
    assert registry["containsSpectroManifests"] is True
    assert registry["endpoint"] == f"https://{world.registry.host}"
    assert world.tags() == ["0.0.0"]
    # specman serves the pushed digest
    status = world.serve.client().get("/_specman/status").json()
    assert status["tags"]["0.0.0"] == s["digest"]

    # a re-run from nginx's JSON listings: the same content is already there, nothing is pushed again
    again = world.migrate(source=world.scar.url("/json/"))
    assert again.code == 0, again.stderr
    assert again.summary["pushed"] is False and again.summary["digest"] == s["digest"]
    assert "already has this content" in again.stderr
    assert len(world.registries()) == 1


def test_a_file_changed_after_the_push_stops_before_the_switch(world: World) -> None:
    changed = world.scar_root / "cloud-types" / "index.json"
    cmd = [sys.executable, "-m", "specman", *world.args()]  # no notification: it waits for specman's next sync
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("Waiting for specman's next sync"):
                changed.write_text(changed.read_text() + "\n")  # the operator edits a file meanwhile

    reader = threading.Thread(target=read)
    reader.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.wait(240)
    reader.join()
    err = "".join(lines)
    assert proc.returncode == 1, err
    summary = json.loads(stdout)
    assert summary["failedPhase"] == "parity"
    assert summary["parity"]["different"] == ["cloud-types/index.json"]
    assert "parity proof failed, the SCAR was not switched: 1 different (cloud-types/index.json)" in err
    assert world.scar_config() is None  # never switched
    assert "jobs" not in summary


def test_a_failing_job_after_the_switch_rolls_back(world: World) -> None:
    # the data is valid (preflight reads it with the jobs' own code), but specman goes down right after the parity
    # proof: the jobs cannot read it from the new SCAR endpoint, and the previous one is put back
    old = {"endpoint": "http://old-scar.example:8080", "username": "reader", "password": "old-scar-pw"}
    with world.console.client(world.console.login()) as c:
        assert c.put("/v1/system/config/scar", json=old).status_code == 204
    args = world.args("--notify-token-file", str(world.files["notify"]))
    env = clean_env({"SPECMAN_FROM_PASSWORD": "old-scar-pw"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "specman", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("Parity proof:"):
                world.serve.kill9()

    reader = threading.Thread(target=read)
    reader.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.wait(240)
    reader.join()
    result = Result(proc.returncode, stdout, "".join(lines))
    assert result.code == 1, result.stderr
    result.clean(world)
    assert "old-scar-pw" not in result.stdout + result.stderr
    s = result.summary
    assert s["rolledBack"] is True and s["failedPhase"] == "switch"
    assert s["jobs"][0]["state"] == "failed"
    assert f"the previous SCAR endpoint {old['endpoint']} was restored" in result.stderr
    scar = world.scar_config()
    assert scar is not None and scar["endpoint"] == old["endpoint"] and scar["username"] == "reader"
    assert scar["passwordSet"] is True


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "cloud-types/index.json: GET "),
        ("field", "cloud-types/aws/instance-types.json: [0].vcpu: must be an integer >= 1, not 'two'"),
        ("json", "cloud-types/aws/storage-types.json: not valid JSON"),
    ],
)
def test_cloud_type_data_the_jobs_cannot_ingest_stops_in_preflight(world: World, damage: str, message: str) -> None:
    """The console's jobs would fail only after the switch: the preflight reads the data as they do (the SCAR's
    URL here, through the jobs' own HTTP code and validator) and stops with nothing pushed, the console untouched."""
    data = world.scar_root / "cloud-types"
    if damage == "missing":
        shutil.rmtree(data)
    elif damage == "field":
        path = data / "aws" / "instance-types.json"
        items = json.loads(path.read_text())
        items[0]["vcpu"] = "two"
        path.write_text(json.dumps(items))
    else:
        (data / "aws" / "storage-types.json").write_text("[{")
    result = world.migrate()
    assert result.code == 1, result.stderr
    assert f"FAIL cloud types: {message}" in result.stderr
    assert "preflight failed (1 problem, nothing was changed): cloud types: " in result.stderr
    assert result.summary["failedPhase"] == "preflight"
    assert world.tags() == []  # nothing pushed
    assert world.scar_config() is None and world.registries() == []  # the console untouched
    # the same from the directory: read from the tree with the same validator
    direct = world.migrate(source=str(world.scar_root))
    assert direct.code == 1 and "FAIL cloud types: cloud-types/" in direct.stderr, direct.stderr
    assert world.tags() == []


def test_without_the_scar_password_a_rollback_is_impossible_so_it_stops_in_preflight(world: World) -> None:
    with world.console.client(world.console.login()) as c:
        old = {"endpoint": "http://old-scar.example:8080", "username": "reader", "password": "pw"}
        assert c.put("/v1/system/config/scar", json=old).status_code == 204
    result = world.migrate()
    assert result.code == 1
    assert "FAIL console: the current SCAR endpoint has a password" in result.stderr
    assert world.tags() == []


def test_wrong_console_password_fails_in_preflight_and_changes_nothing(world: World) -> None:
    world.files["console_pw"].write_text("not-the-password\n")
    result = world.migrate()
    assert result.code == 1
    result.clean(world)
    assert "FAIL console: console 127.0.0.1" in result.stderr and "HTTP 401" in result.stderr
    assert "skip console registry: not checked: no console session" in result.stderr
    assert "preflight failed (1 problem, nothing was changed): console: " in result.stderr
    assert result.summary["failedPhase"] == "preflight"
    assert world.tags() == []  # nothing pushed
    world.files["console_pw"].write_text(ADMIN_PASSWORD + "\n")
    assert world.scar_config() is None and world.registries() == []


def test_dry_run_checks_everything_and_changes_nothing(world: World) -> None:
    started = time.monotonic()
    result = world.migrate("--dry-run", source=str(world.scar_root))
    assert result.code == 0, result.stderr
    assert "Dry run: nothing was changed" in result.stderr
    assert result.summary["dryRun"] is True
    assert world.tags() == [] and world.scar_config() is None and world.registries() == []
    assert time.monotonic() - started < 60


def test_quickstart_against_a_real_registry_with_token_auth(tmp_path: Path, registry_factory: RegistryFactory) -> None:
    """The README's first command with ``--to`` a real registry: the same migration, the registry in the console."""
    registry = registry_factory("token")
    pw = tmp_path / "registry-pw"
    pw.write_text(f"{registry.password}\n")
    ref = f"{registry.host}/{REPO}"
    args = ["quickstart", "--to", ref, "-u", str(registry.username), "--password-file", str(pw)]
    args += ["--ca-file", str(registry.ca_file), "--work-dir", str(tmp_path / "qs")]
    args += ["--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0", "--exit-after", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "specman", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ok   console registry: the console reaches the registry" in proc.stderr
    assert "with 'Contains Spectro Manifests'; the console validated it" in proc.stderr
    assert "Parity proof: 105 files" in proc.stderr and "Migration complete:" in proc.stderr
    assert str(registry.password) not in proc.stdout + proc.stderr
    digest = proc.stdout.strip().splitlines()[-1]
    options = RegistryOptions(username=registry.username, password=registry.password, ca_file=str(registry.ca_file))
    repo = open_target(ref, options, default_tag=None).repository
    try:
        assert repo.resolve("0.0.0").digest == digest
    finally:
        repo.close()
