"""``SQLiteStorage``: the console's ``Storage`` in one SQLite file (stdlib ``sqlite3``).

WAL journal (readers never block the writer), ``foreign_keys=ON`` and a busy timeout on every connection, one
connection per thread (Starlette runs blocking calls in a thread pool), write transactions as ``BEGIN IMMEDIATE``
so that the read-then-write decisions of ``trigger_job`` and ``finish_run`` are serialised across processes.
The schema is ``specman.console.migrations.MIGRATIONS``, tracked in ``PRAGMA user_version``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from specman.console.migrations import MIGRATIONS
from specman.console.storage import ConflictError, JobRun, RegistryRecord, RunState, ScarRecord, Validation
from specman.errors import StoreError

__all__ = ["SQLiteStorage"]

_BUSY_TIMEOUT_S: Final = 15.0
_INTERRUPTED: Final = "interrupted: the console process running it exited before the run ended"


def _registry(row: sqlite3.Row) -> RegistryRecord:
    return RegistryRecord(
        uid=row["uid"],
        name=row["name"],
        endpoint=row["endpoint"],
        username=row["username"],
        password=row["password"],
        ca_cert=row["ca_cert"],
        insecure=bool(row["insecure"]),
        contains_spectro_manifests=bool(row["spectro"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        verify_policy=row["verify_policy"],
        auth_type=row["auth_type"],
        aws_access_key_id=row["aws_access_key_id"],
        aws_secret=row["aws_secret"],
        aws_role_arn=row["aws_role_arn"],
        aws_external_id=row["aws_external_id"],
    )


def _run(row: sqlite3.Row) -> JobRun:
    """A ``job_runs`` row (its columns are named as ``JobRun``'s fields)."""
    return JobRun(**{f.name: row[f.name] for f in dataclasses.fields(JobRun)})


def _conflict(connection: sqlite3.Connection, record: RegistryRecord) -> ConflictError:
    """Which unique constraint ``record`` broke, asked of the database (SQLite names it only in its message text)."""
    others = "SELECT 1 FROM registries WHERE uid != ? AND "
    if record.contains_spectro_manifests and connection.execute(others + "spectro = 1", (record.uid,)).fetchone():
        return ConflictError(
            "containsSpectroManifests",
            "another registry already contains the Spectro manifests (clear it there first)",
        )
    if connection.execute(others + "name = ?", (record.uid, record.name)).fetchone():
        return ConflictError("name", "a registry with this name already exists")
    return ConflictError("", "the change conflicts with existing data")


class SQLiteStorage:
    """The console's data in ``path`` (created and migrated on open)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        try:
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path}: {exc}") from None

    # -- connections and transactions -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._connect().execute(sql, args).fetchall()

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(f"database {self.path} has schema {version}, newer than this specman ({len(MIGRATIONS)})")
        for number in range(version, len(MIGRATIONS)):
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]};\nPRAGMA user_version = {number + 1};\nCOMMIT;"
                )
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- users and tokens -----------------------------------------------------------------------------------
    def password_hash(self, username: str) -> str | None:
        rows = self._read("SELECT password_hash FROM users WHERE username = ?", (username,))
        return str(rows[0][0]) if rows else None

    def set_password_hash(self, username: str, password_hash: str) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO users (username, password_hash, updated_at) VALUES (?, ?, strftime('%s','now')) "
                "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, "
                "updated_at = excluded.updated_at",
                (username, password_hash),
            )

    def add_token(self, token_hash: str, username: str, created_at: float, expires_at: float) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO tokens (token_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, username, created_at, expires_at),
            )

    def token_user(self, token_hash: str, now: float) -> str | None:
        rows = self._read(
            "SELECT username FROM tokens WHERE token_hash = ? AND revoked = 0 AND expires_at > ?", (token_hash, now)
        )
        return str(rows[0][0]) if rows else None

    def revoke_token(self, token_hash: str) -> None:
        with self._write() as c:
            c.execute("UPDATE tokens SET revoked = 1 WHERE token_hash = ?", (token_hash,))

    def purge_tokens(self, now: float) -> int:
        with self._write() as c:
            return c.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount

    # -- login throttling -----------------------------------------------------------------------------------
    def locked_until(self, key: str) -> float:
        rows = self._read("SELECT locked_until FROM login_failures WHERE key = ?", (key,))
        return float(rows[0][0]) if rows else 0.0

    def record_login_failure(self, key: str, now: float, threshold: int, base: float, cap: float) -> float:
        with self._write() as c:
            row = c.execute("SELECT failures FROM login_failures WHERE key = ?", (key,)).fetchone()
            failures = (row[0] if row else 0) + 1
            locked = now + min(cap, base * 2 ** (failures - threshold)) if failures >= threshold else 0.0
            c.execute(
                "INSERT INTO login_failures (key, failures, locked_until) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until",
                (key, failures, locked),
            )
            return locked

    def clear_login_failures(self, key: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM login_failures WHERE key = ?", (key,))

    # -- SCAR -----------------------------------------------------------------------------------------------
    def scar(self) -> ScarRecord | None:
        rows = self._read("SELECT endpoint, username, password, ca_cert, insecure, updated_at FROM scar WHERE id = 1")
        if not rows:
            return None
        r = rows[0]
        return ScarRecord(
            r["endpoint"], r["username"], r["password"], r["ca_cert"], bool(r["insecure"]), r["updated_at"]
        )

    def put_scar(self, record: ScarRecord) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO scar (id, endpoint, username, password, ca_cert, insecure, updated_at) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    record.endpoint,
                    record.username,
                    record.password,
                    record.ca_cert,
                    int(record.insecure),
                    record.updated_at,
                ),
            )

    # -- registries -----------------------------------------------------------------------------------------
    def registries(self) -> list[RegistryRecord]:
        return [_registry(r) for r in self._read("SELECT * FROM registries ORDER BY name")]

    def registry(self, uid: str) -> RegistryRecord | None:
        rows = self._read(
            "SELECT * FROM registries WHERE uid = ?",
            (uid,),
        )
        return _registry(rows[0]) if rows else None

    def spectro_registry(self) -> RegistryRecord | None:
        rows = self._read("SELECT * FROM registries WHERE spectro = 1")
        return _registry(rows[0]) if rows else None

    @staticmethod
    def _registry_values(r: RegistryRecord) -> tuple[Any, ...]:
        spectro = int(r.contains_spectro_manifests)
        aws = (r.auth_type, r.aws_access_key_id, r.aws_secret, r.aws_role_arn, r.aws_external_id)
        values = (r.name, r.endpoint, r.username, r.password, r.ca_cert, int(r.insecure), spectro, r.verify_policy)
        return (*values, *aws, r.updated_at)

    def _conflict(self, record: RegistryRecord) -> ConflictError:
        return _conflict(self._connect(), record)

    def insert_registry(self, record: RegistryRecord) -> None:
        try:
            with self._write() as c:
                c.execute(
                    "INSERT INTO registries (uid, name, endpoint, username, password, ca_cert, insecure, spectro, "
                    "verify_policy, auth_type, aws_access_key_id, aws_secret, aws_role_arn, aws_external_id, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.uid, *self._registry_values(record)[:-1], record.created_at, record.updated_at),
                )
        except sqlite3.IntegrityError:
            raise self._conflict(record) from None

    def update_registry(self, record: RegistryRecord) -> bool:
        try:
            with self._write() as c:
                return (
                    c.execute(
                        "UPDATE registries SET name = ?, endpoint = ?, username = ?, password = ?, ca_cert = ?, "
                        "insecure = ?, spectro = ?, verify_policy = ?, auth_type = ?, aws_access_key_id = ?, "
                        "aws_secret = ?, aws_role_arn = ?, aws_external_id = ?, updated_at = ? WHERE uid = ?",
                        (*self._registry_values(record), record.uid),
                    ).rowcount
                    == 1
                )
        except sqlite3.IntegrityError:
            raise self._conflict(record) from None

    def delete_registry(self, uid: str) -> bool:
        with self._write() as c:
            return c.execute("DELETE FROM registries WHERE uid = ?", (uid,)).rowcount == 1

    def record_validation(self, uid: str, validation: Validation) -> bool:
        """Keep ``validation`` as the registry's last one; False when the registry is gone."""
        try:
            with self._write() as c:
                c.execute(
                    "INSERT OR REPLACE INTO registry_validations (uid, ok, checks, validated_at) VALUES (?, ?, ?, ?)",
                    (uid, int(validation.ok), json.dumps(validation.checks), validation.validated_at),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def clear_validation(self, uid: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM registry_validations WHERE uid = ?", (uid,))

    def validations(self) -> dict[str, Validation]:
        rows = self._read("SELECT uid, ok, checks, validated_at FROM registry_validations")
        return {r["uid"]: Validation(bool(r["ok"]), json.loads(r["checks"]), r["validated_at"]) for r in rows}

    # -- jobs -----------------------------------------------------------------------------------------------
    @staticmethod
    def _fail_orphans(c: sqlite3.Connection, job: str | None, now: float, owner_alive: Callable[[str], bool]) -> int:
        """Fail runs whose owner died; a queued run nobody will pick up any more fails with them."""
        rows = c.execute(
            "SELECT id, owner FROM job_runs WHERE state = 'running' AND (? IS NULL OR job = ?)", (job, job)
        ).fetchall()
        dead = [r["id"] for r in rows if not r["owner"] or not owner_alive(r["owner"])]
        for run_id in dead:
            c.execute(
                "UPDATE job_runs SET state = 'failed', ended_at = ?, error = ? WHERE id = ?",
                (now, _INTERRUPTED, run_id),
            )
        return len(dead)

    def trigger_job(self, job: str, owner: str, now: float, owner_alive: Callable[[str], bool]) -> int | None:
        """Queue a run of ``job`` (coalescing with a queued one); the id of a run the caller must start now, if any."""
        with self._write() as c:
            self._fail_orphans(c, job, now, owner_alive)
            running = c.execute("SELECT 1 FROM job_runs WHERE job = ? AND state = 'running'", (job,)).fetchone()
            queued = c.execute(
                "SELECT id FROM job_runs WHERE job = ? AND state = 'queued' ORDER BY id LIMIT 1", (job,)
            ).fetchone()
            if running:
                if not queued:
                    c.execute("INSERT INTO job_runs (job, state, queued_at) VALUES (?, 'queued', ?)", (job, now))
                return None
            if queued:
                run_id = int(queued[0])
            else:
                run_id = int(
                    c.execute(
                        "INSERT INTO job_runs (job, state, queued_at) VALUES (?, 'queued', ?)", (job, now)
                    ).lastrowid
                    or 0
                )
            c.execute(
                "UPDATE job_runs SET state = 'running', started_at = ?, owner = ? WHERE id = ?", (now, owner, run_id)
            )
            return run_id

    def finish_run(
        self, run_id: int, state: RunState, items: int | None, error: str | None, owner: str, now: float
    ) -> int | None:
        """Record the end of a run and claim the run queued behind it (its id), if any."""
        with self._write() as c:
            row = c.execute("SELECT job FROM job_runs WHERE id = ?", (run_id,)).fetchone()
            c.execute(
                "UPDATE job_runs SET state = ?, ended_at = ?, items = ?, error = ? "
                "WHERE id = ? AND owner = ? AND state = 'running'",
                (state, now, items, error, run_id, owner),
            )
            if row is None:
                return None
            queued = c.execute(
                "SELECT id FROM job_runs WHERE job = ? AND state = 'queued' ORDER BY id LIMIT 1", (row[0],)
            ).fetchone()
            if queued is None:
                return None
            c.execute(
                "UPDATE job_runs SET state = 'running', started_at = ?, owner = ? WHERE id = ?", (now, owner, queued[0])
            )
            return int(queued[0])

    def runs(self, job: str, limit: int) -> list[JobRun]:
        rows = self._read("SELECT * FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT ?", (job, limit))
        return [_run(r) for r in rows]

    def fail_orphaned_runs(self, now: float, owner_alive: Callable[[str], bool]) -> int:
        """Fail running runs of dead owners and queued runs no running run will pick up (start-up recovery)."""
        with self._write() as c:
            failed = self._fail_orphans(c, None, now, owner_alive)
            failed += c.execute(
                "UPDATE job_runs SET state = 'failed', ended_at = ?, error = ? WHERE state = 'queued' AND job NOT IN "
                "(SELECT job FROM job_runs WHERE state = 'running')",
                (now, _INTERRUPTED),
            ).rowcount
            return failed

    # -- cloud data -----------------------------------------------------------------------------------------
    def replace_cloud_data(self, kind: str, data: dict[str, list[dict[str, Any]]], run_id: int, now: float) -> None:
        with self._write() as c:
            c.execute("DELETE FROM cloud_data WHERE kind = ?", (kind,))
            c.executemany(
                "INSERT INTO cloud_data (kind, cloud, items, item_count, run_id, ingested_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(kind, cloud, json.dumps(items), len(items), run_id, now) for cloud, items in sorted(data.items())],
            )

    def cloud_data(self, kind: str, cloud: str) -> tuple[list[dict[str, Any]], float] | None:
        rows = self._read("SELECT items, ingested_at FROM cloud_data WHERE kind = ? AND cloud = ?", (kind, cloud))
        if not rows:
            return None
        items: list[dict[str, Any]] = json.loads(rows[0]["items"])
        return items, float(rows[0]["ingested_at"])

    def clouds(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self._read("SELECT cloud, kind, item_count FROM cloud_data ORDER BY cloud, kind"):
            out.setdefault(row["cloud"], {})[row["kind"]] = int(row["item_count"])
        return out
