"""Prometheus metrics of ``specman serve`` (``GET /_specman/metrics``, also ``/metrics`` where the tree has no such
entry), across its main process and its server workers.

The sync loop runs in the main process and requests are answered by ``--workers`` other processes, so
prometheus-client runs in multiprocess mode: each process writes its values to memory-mapped files in one
directory (``RunDir.metrics_dir``) and ``/_specman/metrics`` merges them.  prometheus-client picks that mode when it is
first imported, from ``PROMETHEUS_MULTIPROC_DIR``: ``Metrics(directory)`` sets it, then imports the library, so
nothing in specman may import ``prometheus_client`` elsewhere.

Names::

    specman_sync_runs_total{result="success|partial|failure"}      reconciles run
    specman_sync_duration_seconds                                   histogram of reconcile durations
    specman_sync_bytes_total                                        layer bytes downloaded
    specman_sync_errors_total{kind="ListTagsFailed|DigestMismatchError|..."}   failed runs and failed tags
    specman_sync_last_success_timestamp_seconds                     end of the last reconcile without failure
    specman_sync_consecutive_failures                               failed reconciles in a row
    specman_published_generation / specman_published_tags           what is served
    specman_store_unique_bytes / specman_store_logical_bytes         content stored once / as the versions hold it
    specman_store_sharing_ratio                                     logical bytes per unique byte
    specman_store_objects / specman_store_inodes                    distinct files in the pool / inodes used
    specman_http_requests_total{method="GET|HEAD|...", status="200"}   responses of the workers
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from specman.errors import SyncError
from specman.sync.reconcile import SyncResult

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The metrics of one process of ``specman serve``, written to the shared multiprocess ``directory``."""

    content_type: Final = CONTENT_TYPE

    def __init__(self, directory: Path) -> None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.directory = directory
        self._registry = CollectorRegistry()  # metric objects only; exposition merges the files (``render``)
        reg: Any = self._registry
        self.sync_runs = Counter("specman_sync_runs", "Reconciles run, by result.", ["result"], registry=reg)
        self.sync_duration = Histogram(
            "specman_sync_duration_seconds", "Duration of reconciles.", buckets=_DURATION_BUCKETS, registry=reg
        )
        self.sync_bytes = Counter("specman_sync_bytes", "Layer bytes downloaded by the sync.", registry=reg)
        self.sync_errors = Counter(
            "specman_sync_errors", "Failed reconciles and failed tags, by kind.", ["kind"], registry=reg
        )
        self.last_success = Gauge(
            "specman_sync_last_success_timestamp_seconds",
            "Unix time of the end of the last reconcile without failure.",
            multiprocess_mode="max",
            registry=reg,
        )
        self.consecutive_failures = Gauge(
            "specman_sync_consecutive_failures",
            "Failed reconciles in a row.",
            multiprocess_mode="mostrecent",
            registry=reg,
        )
        self.generation = Gauge(
            "specman_published_generation", "The generation served.", multiprocess_mode="mostrecent", registry=reg
        )
        self.tags = Gauge(
            "specman_published_tags", "Tags in the served view.", multiprocess_mode="mostrecent", registry=reg
        )
        self.storage = {
            name: Gauge(f"specman_store_{name}", text, multiprocess_mode="mostrecent", registry=reg)
            for name, text in (
                ("unique_bytes", "Bytes of the distinct file contents stored (the object pool)."),
                ("logical_bytes", "Bytes of the stored versions, each counted in full."),
                ("sharing_ratio", "Logical bytes per unique byte."),
                ("objects", "Distinct file contents stored (objects in the pool)."),
                ("inodes", "Inodes used by the data directory (objects, directories, symlinks, records)."),
            )
        }
        self.requests = Counter(
            "specman_http_requests", "HTTP responses, by method and status.", ["method", "status"], registry=reg
        )
        self.verifications = Counter(
            "specman_verification",
            "Signature verifications made by the sync (cached results not counted), by result.",
            ["result"],
            registry=reg,
        )
        self._failures = 0
        self._request_children: dict[tuple[str, int], Any] = {}

    def record_sync(self, result: SyncResult | None, error: SyncError | None) -> None:
        """Count one reconcile (what ``run_loop``'s ``on_result`` sees)."""
        ok = error is None and result is not None and result.ok
        if result is None and error is not None and isinstance(error.result, SyncResult):
            result = error.result  # a failed reconcile has a duration too
        if result is not None:
            self.sync_duration.observe(result.duration)
            self.sync_bytes.inc(result.bytes_downloaded)
            for kind in result.failure_kinds.values():
                self.sync_errors.labels(kind=kind).inc()
            for outcome, count in result.verification_counts.items():
                self.verifications.labels(result=outcome).inc(count)
            if result.generation is not None:
                self.generation.set(result.generation)
                self.tags.set(len(result.digests))
            if result.storage is not None:
                usage = result.storage.to_json()
                for name, gauge in self.storage.items():
                    gauge.set(usage[name] or 0)
        if error is not None:
            self.sync_errors.labels(kind=error.kind).inc()
        self.sync_runs.labels(result="success" if ok else "partial" if error is None else "failure").inc()
        self._failures = 0 if ok else self._failures + 1
        self.consecutive_failures.set(self._failures)
        if ok and result is not None:
            self.last_success.set(result.finished.timestamp())

    def record_request(self, method: str, status: int) -> None:
        if method not in _METHODS:
            method = "OTHER"  # clients choose methods: the label set must stay bounded
        child = self._request_children.get((method, status))
        if child is None:  # labels() costs 4x an inc(): keep the children (few: methods x statuses)
            child = self._request_children[(method, status)] = self.requests.labels(method=method, status=str(status))
        child.inc()

    def render(self) -> bytes:
        """The exposition text of every process's metrics (``GET /_specman/metrics``)."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
