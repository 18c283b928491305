"""``SyncStatus``: the sync loop's state as operators see it (``/_specman/status``, ``/readyz``, the status page).

The main process folds every reconcile in (``record``) and saves it as ``sync.json`` in the run directory
(``save``, atomically); server workers read it back with ``load``: one typed class is both the writer and the
reader of that file, so a field is added in one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from specman.errors import SyncError
from specman.files import atomic_write
from specman.sync.reconcile import SyncResult

__all__ = ["HISTORY_MAX", "SyncStatus"]

HISTORY_MAX: Final = 30  # recent reconciles kept in ``SyncStatus.history`` (the status page's chart)


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass
class SyncStatus:
    """The sync loop's state as ``/_specman/status`` and ``/readyz`` show it."""

    source: str
    state: str = "pending"  # pending (no reconcile finished yet), ok, failing
    last_started: str | None = None
    last_finished: str | None = None
    last_duration: float | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    consecutive_failures: int = 0
    runs: int = 0
    failed_tags: dict[str, str] = field(default_factory=dict)
    # the last HISTORY_MAX reconciles, oldest first: {"finished", "duration", "ok", "downloaded", "served"}
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: SyncResult | None, error: SyncError | None, served_bytes: int | None = None) -> None:
        """Fold one reconcile's outcome in (what ``run_loop``'s ``on_result`` sees); ``served_bytes`` is the size
        of the published view afterwards."""
        if result is None and error is not None and isinstance(error.result, SyncResult):
            result = error.result  # when the failed reconcile started and how long it ran
        self._record(result, error)
        self.history.append(
            {
                "finished": self.last_finished,
                "duration": self.last_duration,
                "ok": self.state == "ok",
                "downloaded": result.bytes_downloaded if result is not None else 0,
                "served": served_bytes,
            }
        )
        del self.history[:-HISTORY_MAX]

    def _record(self, result: SyncResult | None, error: SyncError | None) -> None:
        self.runs += 1
        now = datetime.now(UTC)
        if result is not None:
            self.source = result.source  # with --console, the registry the console names now
            self.last_started, self.last_finished = _iso(result.started), _iso(result.finished)
            self.last_duration = round(result.duration, 3)
            self.failed_tags = dict(result.failed)
        else:  # failed before a reconcile could start (the console did not name a source)
            self.last_started = self.last_finished = _iso(now)
            self.last_duration = 0.0
        if error is None and result is not None and result.ok:
            self.state, self.last_success = "ok", self.last_finished
            self.last_error = self.last_error_reason = None
            self.consecutive_failures = 0
            return
        self.state = "failing"
        self.consecutive_failures += 1
        if error is not None:
            self.last_error, self.last_error_reason = str(error), error.reason
        elif result is not None:
            self.last_error = "; ".join(f"{tag}: {message}" for tag, message in sorted(result.failed.items()))
            self.last_error_reason = "TagsFailed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncStatus:
        """The status saved by ``to_json``; unknown keys (a newer writer) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically (readers see the old or the new state, never a mix)."""
        atomic_write(path, json.dumps(self.to_json()).encode(), mode=0o600, durable=False)

    @classmethod
    def load(cls, path: Path) -> SyncStatus | None:
        """The status saved at ``path``, or None when there is none (yet) or it is not a status."""
        try:
            data = json.loads(path.read_bytes())
            return cls.from_json(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None
