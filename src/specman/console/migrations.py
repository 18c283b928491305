"""The console database's schema as numbered migrations (SQLite dialect).

``MIGRATIONS[n]`` brings a database from ``user_version`` n to n + 1; they are applied in order, each in its own
transaction, and never edited once released: a schema change is a new entry at the end.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS"]

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: users, tokens, login throttling, settings, registries, jobs, ingested cloud data
    """
    CREATE TABLE users (
        username      TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_expiry ON tokens(expires_at);
    CREATE TABLE login_failures (
        key          TEXT PRIMARY KEY,
        failures     INTEGER NOT NULL,
        locked_until REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE scar (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        endpoint   TEXT NOT NULL,
        username   TEXT NOT NULL,
        password   BLOB,
        ca_cert    TEXT NOT NULL,
        insecure   INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE registries (
        uid        TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        endpoint   TEXT NOT NULL,
        username   TEXT NOT NULL,
        password   BLOB,
        ca_cert    TEXT NOT NULL,
        insecure   INTEGER NOT NULL,
        spectro    INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX registries_one_spectro ON registries(spectro) WHERE spectro = 1;
    CREATE TABLE job_runs (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        job        TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        queued_at  REAL NOT NULL,
        started_at REAL,
        ended_at   REAL,
        items      INTEGER,
        error      TEXT,
        owner      TEXT
    );
    CREATE INDEX job_runs_job ON job_runs(job, id);
    CREATE TABLE cloud_data (
        kind        TEXT NOT NULL,
        cloud       TEXT NOT NULL,
        items       TEXT NOT NULL,
        item_count  INTEGER NOT NULL,
        run_id      INTEGER REFERENCES job_runs(id) ON DELETE SET NULL,
        ingested_at REAL NOT NULL,
        PRIMARY KEY (kind, cloud)
    );
    """,
    # 2: the last validation of each registry's stored values (the console's Pack Registries page shows it)
    """
    CREATE TABLE registry_validations (
        uid          TEXT PRIMARY KEY REFERENCES registries(uid) ON DELETE CASCADE,
        ok           INTEGER NOT NULL,
        checks       TEXT NOT NULL,
        validated_at REAL NOT NULL
    );
    """,
    # 3: the signature policy a registry carries (serve --console follows it): PolicySpec as JSON, '' = off
    """
    ALTER TABLE registries ADD COLUMN verify_policy TEXT NOT NULL DEFAULT '';
    """,
    # 3: registries whose password comes from AWS (authType ecr): an access key (its secret sealed), a role to assume
    """
    ALTER TABLE registries ADD COLUMN auth_type TEXT NOT NULL DEFAULT 'basic';
    ALTER TABLE registries ADD COLUMN aws_access_key_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE registries ADD COLUMN aws_secret BLOB;
    ALTER TABLE registries ADD COLUMN aws_role_arn TEXT NOT NULL DEFAULT '';
    ALTER TABLE registries ADD COLUMN aws_external_id TEXT NOT NULL DEFAULT '';
    """,
)
