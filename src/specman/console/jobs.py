"""The internal jobs: read the cloud type data files from the SCAR endpoint, validate them, store them.

``JOBS`` maps the job names of the product's API to the kind of data they ingest.  ``JobRunner.trigger`` records a
run in the database and, when no run of that job is going on, executes it in a background thread of this process;
a trigger while one runs queues (at most) one more run, and triggers while one is queued coalesce into it.  When a
run ends, the same transaction claims the queued one, so coordination holds across granian workers sharing the
database.  A run left ``running`` by a process that died (same host: its pid is gone) is failed by the next trigger
and at start-up.

A run reads ``cloud-types/index.json``, then every cloud's file of its kind, validates everything
(``specman.console.cloudtypes``) and only then replaces the stored data in one transaction: a bad file fails the run
with an error naming the file and field and leaves the previously ingested data in place.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from specman.console.cloudtypes import MAX_FILE_BYTES, DataFileError, read_cloud_data
from specman.console.storage import RunState, Storage
from specman.errors import SpecmanError
from specman.oci.http import RetryPolicy, TLSOptions, make_client, send

__all__ = ["JOBS", "MAX_FILE_BYTES", "JobRunner", "ScarSource", "fetch_cloud_data", "owner_alive"]

JOBS: Final = {"syncCloudInstanceTypesData": "instanceTypes", "syncCloudStorageTypesData": "storageTypes"}
_RETRY: Final = RetryPolicy(attempts=3, timeout=60.0, wait_initial=0.5, wait_max=5.0)

log = logging.getLogger("specman.console.jobs")


@dataclass(frozen=True)
class ScarSource:
    """Where the jobs read from (the SCAR configuration, password decrypted)."""

    endpoint: str
    username: str = ""
    password: str = field(default="", repr=False)
    ca_cert: str = ""
    insecure: bool = False


def _get(client: httpx.Client, base: str, path: str) -> bytes:
    url = f"{base}/{path}"
    response = send(client, client.build_request("GET", url), stream=True, policy=_RETRY)
    try:
        if response.status_code != 200:
            reason = {401: "unauthorized", 403: "forbidden", 404: "not found"}.get(response.status_code, "")
            raise DataFileError(f"{path}: GET {url}: HTTP {response.status_code}{' ' + reason if reason else ''}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_FILE_BYTES:
                raise DataFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise DataFileError(f"{path}: GET {url}: {exc}") from None
    finally:
        response.close()
    return bytes(body)


def fetch_cloud_data(source: ScarSource, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Every cloud's ``kind`` entries from ``source``, validated; raises ``SpecmanError`` on any problem."""
    base = source.endpoint.rstrip("/")
    auth = httpx.BasicAuth(source.username, source.password) if source.username or source.password else None
    tls = TLSOptions(
        plain_http=base.startswith("http://"), insecure=source.insecure, ca_data=source.ca_cert.strip() or None
    )
    with make_client(tls, auth=auth, timeout=30.0) as client:
        return read_cloud_data(lambda path: _get(client, base, path), kind)


_HOST: Final = socket.gethostname()


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """Whether the process that owns a run still exists (runs of other hosts are assumed alive)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Triggers runs and executes the ones this process claims, one thread per job at a time."""

    def __init__(self, storage: Storage, source: Callable[[], ScarSource | None]) -> None:
        self.storage = storage
        self.source = source
        self._owner: str | None = None
        self._pid = -1
        self._lock = threading.Lock()

    @property
    def owner(self) -> str:
        with self._lock:  # a fresh owner id after a fork (granian workers)
            if self._owner is None or self._pid != os.getpid():
                self._owner, self._pid = _owner(), os.getpid()
            return self._owner

    def trigger(self, job: str) -> None:
        """Record a trigger of ``job`` and start its run here when this process claimed it (KeyError: unknown)."""
        if job not in JOBS:
            raise KeyError(job)
        run_id = self.storage.trigger_job(job, self.owner, time.time(), owner_alive)
        if run_id is not None:
            threading.Thread(target=self._work, args=(job, run_id), name=f"job-{job}", daemon=True).start()
        else:
            log.info("Job trigger coalesced", extra={"fields": {"job": job}})

    def _work(self, job: str, run_id: int | None) -> None:
        while run_id is not None:
            items, error = self.execute(job, run_id)
            state: RunState = "succeeded" if error is None else "failed"
            run_id = self.storage.finish_run(run_id, state, items, error, self.owner, time.time())

    def execute(self, job: str, run_id: int) -> tuple[int | None, str | None]:
        """One run: (items ingested, None) or (None, error)."""
        kind = JOBS[job]
        log.info("Job started", extra={"fields": {"job": job, "run": run_id}})
        try:
            source = self.source()
            if source is None:
                raise SpecmanError("the SCAR endpoint is not configured (PUT /v1/system/config/scar)")
            data = fetch_cloud_data(source, kind)
            self.storage.replace_cloud_data(kind, data, run_id, time.time())
        except SpecmanError as exc:
            log.error("Job failed", extra={"fields": {"job": job, "run": run_id, "error": str(exc)}})
            return None, str(exc)
        except Exception as exc:  # a job thread must always record its end
            log.exception("Job failed", extra={"fields": {"job": job, "run": run_id}})
            return None, f"internal error: {type(exc).__name__}"
        items = sum(len(v) for v in data.values())
        log.info("Job succeeded", extra={"fields": {"job": job, "run": run_id, "items": items, "clouds": len(data)}})
        return items, None
