"""Registry notifications → the sync loop: wake it now, and again while a pushed tag is not listed yet.

The CNCF distribution registry sends the manifest-push event when the manifest is stored, before the tag is
linked (its handler tags after the notifying manifest service returns), so a reconcile started by the event can
list the tags a moment too early.  ``Trigger`` therefore remembers each pushed tag the filter selects and,
after every reconcile (``after_sync``, from ``run_loop``'s ``on_result``), wakes the loop again after 0.2, 0.4,
0.8... s while such a tag is still missing from the listing, for at most ``patience`` seconds; then it logs that
the tag is left for the next interval.  A deleted tag needs one reconcile: it is only woken for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from specman.errors import SyncError
from specman.sync.filters import TagFilter
from specman.sync.reconcile import SyncResult

__all__ = ["Trigger"]

log = logging.getLogger("specman.sync")


class Trigger:
    """Wakes the sync loop (``wake``) for notifications; thread-safe (workers' messages and the loop thread)."""

    def __init__(
        self,
        wake: threading.Event,
        tag_filter: TagFilter,
        *,
        patience: float = 10.0,
        first_retry: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wake = wake
        self.tag_filter = tag_filter
        self.patience = patience
        self.first_retry = first_retry
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # pushed tag -> when it was notified
        self._retries = 0

    def notified(self, events: list[tuple[str, str]]) -> None:
        """A worker accepted a notification: ``(tag, action)`` pairs (an empty list: sync everything)."""
        tags = [tag for tag, _ in events]
        selected = set(self.tag_filter.select(tags))
        if events and not selected:
            log.info("Ignoring notification", extra={"fields": {"tags": " ".join(tags), "why": "not selected"}})
            return
        now = self.clock()
        with self._lock:
            for tag, action in events:
                if tag in selected and action == "push":
                    self._pending.setdefault(tag, now)
            self._retries = 0
        log.info("Notification received, syncing now", extra={"fields": {"tags": " ".join(sorted(selected))}})
        self.wake.set()

    def after_sync(self, result: SyncResult | None, error: SyncError | None) -> None:
        """Forget the pushed tags the reconcile listed; wake again later for the others, within ``patience``."""
        now = self.clock()
        with self._lock:
            if result is not None:
                for tag in result.listed:
                    self._pending.pop(tag, None)
            expired = [tag for tag, since in self._pending.items() if now - since > self.patience]
            for tag in expired:
                del self._pending[tag]
            retry_in: float | None = None
            if not self._pending:
                self._retries = 0
            elif error is None:  # after an error the loop's backoff decides
                retry_in = self.first_retry * 2**self._retries
                self._retries += 1
        for tag in expired:
            why = "the registry did not list it in time; the next interval will"
            log.warning(f"Notified tag {tag} is not listed", extra={"fields": {"why": why}})
        if retry_in is not None:
            timer = threading.Timer(retry_in, self.wake.set)
            timer.daemon = True
            timer.start()

    @property
    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)
