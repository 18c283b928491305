"""The console's parts without a server: data file schema, token parsing, secrets, storage and job coordination."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from specman.console.auth import Authenticator, ensure_admin, hash_token, token_from_request
from specman.console.cloudtypes import DataFileError, validate_index, validate_items
from specman.console.crypto import SecretBox, load_or_create_key
from specman.console.errors import ApiError
from specman.console.jobs import owner_alive
from specman.console.migrations import MIGRATIONS
from specman.console.registries import parse_endpoint
from specman.console.sqlite import SQLiteStorage
from specman.console.storage import ConflictError, RegistryRecord, open_storage
from specman.errors import SpecmanError, StoreError, UsageError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "manifests" / "cloud-types"


def _load(rel: str) -> Any:
    return json.loads((EXAMPLES / rel).read_text())


# --------------------------------------------------------------------------- data files


def test_sample_files_validate() -> None:
    entries = validate_index(_load("index.json"))
    assert [e.cloud for e in entries] == ["aws", "azure", "gcp", "vsphere"]
    for entry in entries:
        for kind in ("instanceTypes", "storageTypes"):
            rel = entry.files[kind].removeprefix("cloud-types/")
            items = validate_items(kind, _load(rel), entry.files[kind], entry.counts[kind])
            assert len(items) == entry.counts[kind]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d[0].pop("vcpu"), "[0].vcpu: is required"),
        (lambda d: d[1].update(vcpu=True), "[1].vcpu: must be an integer >= 1, not bool"),
        (lambda d: d[2].update(memoryGiB=0), "[2].memoryGiB: must be a number > 0, not int"),
        (lambda d: d[0].update(pricePerHour="1"), "[0].pricePerHour: must be a number >= 0, not '1'"),
        (lambda d: d[0].update(architecture="s390x"), "[0].architecture: must be one of amd64, arm64, not 's390x'"),
        (lambda d: d[0].update(gpu={"count": 0, "model": "x"}), "[0].gpu.count: must be an integer >= 1, not int"),
        (lambda d: d[0].update(gpu=[]), "[0].gpu: must be null or an object, not list"),
        (lambda d: d[3].update(type=d[2]["type"]), "[3].type: '"),
        (lambda d: d.append(5), "[31]: must be an object, not int"),
    ],
)
def test_instance_type_errors_name_file_and_field(change: Any, message: str) -> None:
    doc = copy.deepcopy(_load("aws/instance-types.json"))
    change(doc)
    with pytest.raises(DataFileError) as err:
        validate_items("instanceTypes", doc, "cloud-types/aws/instance-types.json")
    assert str(err.value).startswith(f"cloud-types/aws/instance-types.json: {message}")


def test_storage_and_index_errors() -> None:
    doc = _load("gcp/storage-types.json")
    for item in doc:
        item["default"] = False
    with pytest.raises(DataFileError, match="exactly one storage type must be the default"):
        validate_items("storageTypes", doc, "f.json")
    with pytest.raises(DataFileError, match=r"has 5 entries but cloud-types/index\.json says 6"):
        validate_items("storageTypes", _load("gcp/storage-types.json"), "f.json", 6)
    with pytest.raises(DataFileError, match="must be a JSON array of objects, not dict"):
        validate_items("storageTypes", {}, "f.json")
    index = _load("index.json")
    for bad, message in (
        ({**index, "schemaVersion": 2}, "schemaVersion: must be 1"),
        ({**index, "clouds": []}, "clouds: lists no cloud"),
        ({**index, "clouds": [{**index["clouds"][0], "instanceTypes": "../../etc/passwd.json"}]}, "instanceTypes"),
        ({**index, "clouds": [{**index["clouds"][0], "storageTypes": "/abs.json"}]}, "storageTypes"),
        ({**index, "clouds": [{**index["clouds"][0], "cloud": "AWS"}]}, "clouds[0].cloud"),
        ({**index, "clouds": [index["clouds"][0], index["clouds"][0]]}, "listed twice"),
        ([], "must be a JSON object"),
    ):
        with pytest.raises(DataFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
            validate_index(bad)


# --------------------------------------------------------------------------- tokens, passwords, secrets


def test_token_from_request() -> None:
    assert token_from_request('Authorization="abc"', None) == ["abc"]
    assert token_from_request("a=1; Authorization=abc ; b=2", "Bearer xyz") == ["abc", "xyz"]
    assert token_from_request(None, "bearer xyz") == ["xyz"]
    assert token_from_request(None, "xyz") == ["xyz"]
    assert token_from_request(None, '"xyz"') == ["xyz"]
    assert token_from_request("Authorization=", "") == []
    assert token_from_request("Other=abc", None) == []


def test_sessions_expire_and_revoke(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "c.db")
    assert "generated" in ensure_admin(storage, tmp_path, None)
    password = (tmp_path / "admin-password").read_text().strip()
    auth = Authenticator(storage, token_ttl=60)
    result = auth.login("admin", password, "10.0.0.1")
    assert auth.user_for(["stale", result.token]) == "admin"
    assert storage.token_user(hash_token(result.token), result.expires_at + 1) is None  # expired
    auth.logout(result.token)
    assert auth.user_for([result.token]) is None
    with pytest.raises(ApiError) as err:
        auth.login("admin", "wrong", "10.0.0.1")
    assert err.value.status == 401
    assert ensure_admin(storage, tmp_path, "new-password-1") == "the admin password given to the console"
    assert auth.login("admin", "new-password-1", "10.0.0.1").token
    assert storage.password_hash(
        "admin",
    ).startswith("$argon2id$")
    storage.close()


def test_service_token() -> None:
    auth = Authenticator(None, token_ttl=1, service_token="s3rvice")  # type: ignore[arg-type]
    assert auth.is_service_token("s3rvice")
    assert not auth.is_service_token("s3rvicE")
    assert not auth.is_service_token(None)
    assert not Authenticator(None, token_ttl=1).is_service_token("s3rvice")  # type: ignore[arg-type]


def test_secret_box_and_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    with pytest.raises(UsageError):
        load_or_create_key(key_file, create=False)
    key = load_or_create_key(key_file, create=True)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert load_or_create_key(key_file, create=True) == key
    box = SecretBox(key)
    sealed = box.seal("pa55", "scar:password")
    assert b"pa55" not in sealed
    assert box.open(sealed, "scar:password") == "pa55"
    with pytest.raises(SpecmanError, match="cannot decrypt"):
        box.open(sealed, "registry:x:password")  # sealed for another place
    with pytest.raises(SpecmanError, match="cannot decrypt"):
        SecretBox(os.urandom(32)).open(sealed, "scar:password")
    assert "key" in repr(box) and str(key) not in repr(box)


# --------------------------------------------------------------------------- storage


def test_migrations_and_database_urls(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/a/console.db")
    assert isinstance(storage, SQLiteStorage)
    assert storage.schema_version() == len(MIGRATIONS)
    conn = sqlite3.connect(tmp_path / "a" / "console.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    storage.close()
    with pytest.raises(StoreError, match="newer than this specman"):
        SQLiteStorage(tmp_path / "a" / "console.db")
    with pytest.raises(UsageError, match="unsupported database URL"):
        open_storage("postgres://db/console")


def test_one_spectro_registry(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "c.db")
    first = RegistryRecord("u1", "one", "h1", "", None, contains_spectro_manifests=True)
    storage.insert_registry(first)
    with pytest.raises(ConflictError) as err:
        storage.insert_registry(RegistryRecord("u2", "two", "h2", "", None, contains_spectro_manifests=True))
    assert err.value.field == "containsSpectroManifests"
    storage.insert_registry(RegistryRecord("u2", "two", "h2", "", None))
    with pytest.raises(ConflictError):
        storage.update_registry(RegistryRecord("u2", "two", "h2", "", None, contains_spectro_manifests=True))
    assert storage.spectro_registry() == first
    storage.close()


def test_job_coordination_across_processes(tmp_path: Path) -> None:
    """Two storages on one file stand for two worker processes: one run at a time, one queued, the rest coalesce."""
    a, b = SQLiteStorage(tmp_path / "c.db"), SQLiteStorage(tmp_path / "c.db")
    alive = {"a", "b"}

    def is_alive(owner: str) -> bool:
        return owner in alive

    first = a.trigger_job("j", "a", 1.0, is_alive)
    assert first is not None
    assert b.trigger_job("j", "b", 2.0, is_alive) is None  # queued behind the running one
    assert b.trigger_job("j", "b", 3.0, is_alive) is None  # coalesced into the queued one
    assert a.trigger_job("other", "a", 3.0, is_alive) is not None  # other jobs are independent
    assert [r.state for r in a.runs("j", 10)] == ["queued", "running"]
    second = a.finish_run(first, "succeeded", 7, None, "a", 4.0)  # the finisher claims the queued run
    assert second is not None
    assert [(r.state, r.owner) for r in b.runs("j", 10)] == [("running", "a"), ("succeeded", "a")]

    alive.discard("a")  # worker a dies while running
    third = b.trigger_job("j", "b", 5.0, is_alive)
    assert third is not None
    runs = b.runs("j", 10)
    assert runs[1].state == "failed"
    assert runs[1].error is not None and "interrupted" in runs[1].error
    assert b.finish_run(third, "failed", None, "boom", "b", 6.0) is None
    assert b.runs("j", 1)[0].error == "boom"
    assert a.fail_orphaned_runs(7.0, lambda owner: False) == 1  # "other" was left running by a
    a.close()
    b.close()


def test_owner_alive() -> None:
    import socket

    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}:x")
    assert owner_alive("another-host:1:x")
    dead = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100_000
    assert not owner_alive(f"{socket.gethostname()}:{dead}:x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://harbor.example.com", ("harbor.example.com", False)),
        ("http://127.0.0.1:5000/", ("127.0.0.1:5000", True)),
        ("registry.example.com:5000", ("registry.example.com:5000", False)),
        ("HTTPS://Harbor.Example.com", ("Harbor.Example.com", False)),
    ],
)
def test_parse_endpoint(value: str, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize("value", ["", "ftp://h", "https://h/path", "https://u@h", "h?x", "https://", "h:port"])
def test_parse_endpoint_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"scheme|expected|not a registry"):
        parse_endpoint(value)
