"""The console's storage interface: the records it keeps and the operations on them, independent of the database.

``SQLiteStorage`` (``specman.console.sqlite``) implements ``Storage``; ``open_storage(url)`` picks the backend from
a URL (``sqlite:///path/console.db`` or a plain path) so that PostgreSQL can be added later behind the same protocol.
Secrets cross this interface only sealed (``bytes`` from ``SecretBox.seal``); tokens only as their sha256 hex.

Job runs: at most one run per job is ``running`` and at most one ``queued`` behind it.  ``trigger_job`` and
``finish_run`` are single transactions that decide which run the calling process executes next, so coordination is
correct across processes sharing the database (granian workers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from specman.errors import UsageError

__all__ = [
    "ConflictError",
    "JobRun",
    "RegistryRecord",
    "RunState",
    "ScarRecord",
    "Storage",
    "Validation",
    "open_storage",
]

RunState = Literal["queued", "running", "succeeded", "failed"]


class ConflictError(Exception):
    """A uniqueness rule was violated (``field`` names it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ScarRecord:
    endpoint: str
    username: str
    password: bytes | None = field(repr=False)  # sealed
    ca_cert: str
    insecure: bool
    updated_at: float


@dataclass(frozen=True)
class RegistryRecord:
    uid: str
    name: str
    endpoint: str
    username: str
    password: bytes | None = field(repr=False)  # sealed
    ca_cert: str = ""
    insecure: bool = False
    contains_spectro_manifests: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    verify_policy: str = ""  # JSON of ``specman.signature.policy.PolicySpec`` ("" = off)
    auth_type: str = "basic"  # or "ecr": the password comes from AWS (GetAuthorizationToken)
    aws_access_key_id: str = ""
    aws_secret: bytes | None = field(default=None, repr=False)  # sealed secret access key
    aws_role_arn: str = ""  # assumed with STS (with the key above, or the process's own AWS identity)
    aws_external_id: str = ""


@dataclass(frozen=True)
class Validation:
    """The last validation of a registry's stored values: each check as ``{"name", "ok", "message"}``."""

    ok: bool
    checks: list[dict[str, Any]]
    validated_at: float


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    state: RunState
    queued_at: float
    started_at: float | None
    ended_at: float | None
    items: int | None
    error: str | None
    owner: str | None


class Storage(Protocol):
    """What the console keeps.  Every method is one transaction; times are Unix seconds."""

    def close(self) -> None: ...

    # users and tokens
    def password_hash(self, username: str) -> str | None: ...
    def set_password_hash(self, username: str, password_hash: str) -> None: ...
    def add_token(self, token_hash: str, username: str, created_at: float, expires_at: float) -> None: ...
    def token_user(self, token_hash: str, now: float) -> str | None: ...
    def revoke_token(self, token_hash: str) -> None: ...
    def purge_tokens(self, now: float) -> int: ...

    # login throttling: failures and lock-out per key (username + client address)
    def locked_until(self, key: str) -> float: ...
    def record_login_failure(self, key: str, now: float, threshold: int, base: float, cap: float) -> float: ...
    def clear_login_failures(self, key: str) -> None: ...

    # SCAR configuration
    def scar(self) -> ScarRecord | None: ...
    def put_scar(self, record: ScarRecord) -> None: ...

    # OCI pack registries
    def registries(self) -> list[RegistryRecord]: ...
    def registry(self, uid: str) -> RegistryRecord | None: ...
    def insert_registry(self, record: RegistryRecord) -> None: ...
    def update_registry(self, record: RegistryRecord) -> bool: ...
    def delete_registry(self, uid: str) -> bool: ...
    def spectro_registry(self) -> RegistryRecord | None: ...
    def record_validation(self, uid: str, validation: Validation) -> bool: ...
    def clear_validation(self, uid: str) -> None: ...
    def validations(self) -> dict[str, Validation]: ...

    # jobs
    def trigger_job(self, job: str, owner: str, now: float, owner_alive: Callable[[str], bool]) -> int | None: ...
    def finish_run(
        self, run_id: int, state: RunState, items: int | None, error: str | None, owner: str, now: float
    ) -> int | None: ...
    def runs(self, job: str, limit: int) -> list[JobRun]: ...
    def fail_orphaned_runs(self, now: float, owner_alive: Callable[[str], bool]) -> int: ...

    # ingested cloud data: kind is "instanceTypes" or "storageTypes"
    def replace_cloud_data(self, kind: str, data: dict[str, list[dict[str, Any]]], run_id: int, now: float) -> None: ...
    def cloud_data(self, kind: str, cloud: str) -> tuple[list[dict[str, Any]], float] | None: ...
    def clouds(self) -> dict[str, dict[str, int]]: ...


def open_storage(url: str | Path) -> Storage:
    """The storage named by ``url``: ``sqlite:///ABSOLUTE/PATH`` or a file path (SQLite)."""
    text = str(url)
    if text.startswith("sqlite:///"):
        path = Path(text[len("sqlite://") :])
    elif "://" in text:
        raise UsageError(f"unsupported database URL {text.split('://', 1)[0]}:// (supported: sqlite:///PATH)")
    else:
        path = Path(text)
    from specman.console.sqlite import SQLiteStorage

    return SQLiteStorage(path)
