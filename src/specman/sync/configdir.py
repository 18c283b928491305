"""Settings from a mounted directory — a Kubernetes ConfigMap volume — read again before every reconcile.

``--config-dir DIR`` names a directory holding one file per setting, as a ConfigMap volume lays out its keys:

    DIR/source      the repository to sync (``HOST[:PORT]/NAME``, or a layout path with ``--oci-layout``)
    DIR/interval    the time between syncs (``30s``, ``5m``...)

A missing file leaves the command-line value (REPO, ``--interval``) in force.  Kubernetes replaces a ConfigMap
volume's files atomically (a symlink swap), and ``ConfigDir`` reads them before every reconcile, so an edited
ConfigMap applies at the next sync without a restart.  A value that does not parse is logged (once per value) and
ignored: the last good one stays in force, and serving goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from specman.errors import SpecmanError, SyncError
from specman.oci import Repository
from specman.sync.loop import parse_duration

__all__ = ["ConfigDir"]

log = logging.getLogger("specman.sync")
_MAX_VALUE = 4096


class ConfigDir:
    """The source (call it) and the interval (``interval()``) as ``DIR`` says now, or the fallbacks."""

    def __init__(
        self,
        path: Path,
        *,
        open_source: Callable[[str], Repository],
        source: str | None,
        interval: float,
    ) -> None:
        self.path = path
        self.open_source = open_source
        self.fallback_source = source
        self.display = f"config-dir:{path}"
        self._interval = interval
        self._lock = threading.Lock()
        self._text: str | None = None
        self._repository: Repository | None = None
        self._rejected: set[tuple[str, str]] = set()

    def _read(self, name: str) -> str | None:
        try:
            text = (self.path / name).read_bytes()[:_MAX_VALUE].decode("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None  # not there (yet): the command line's value stays in force
        return text or None

    def _reject(self, name: str, value: str, why: str) -> None:
        if (name, value) not in self._rejected:
            self._rejected.add((name, value))
            fields = {"file": str(self.path / name), "value": value[:200], "error": why}
            log.error(f"Ignoring {name} from the config dir", extra={"fields": fields})

    def __call__(self) -> Repository:
        """The repository to sync now (opened again only when ``DIR/source`` changed)."""
        text = self._read("source") or self.fallback_source
        with self._lock:
            if text is not None and text == self._text and self._repository is not None:
                return self._repository
            if text is None:
                raise SyncError(
                    f"no source: {self.path / 'source'} is missing and no REPO was given",
                    reason="NoSource",
                    retryable=True,
                )
            try:
                repository = self.open_source(text)
            except SpecmanError as exc:
                self._reject("source", text, str(exc))
                if self._repository is None:
                    raise SyncError(f"{self.path / 'source'}: {exc}", reason="BadSource", retryable=True) from exc
                return self._repository
            old, self._repository, self._text = self._repository, repository, text
        if old is not None:
            old.close()
        log.info("Source from the config dir", extra={"fields": {"repository": repository.display}})
        return repository

    def interval(self) -> float:
        """The interval as ``DIR/interval`` says now (the last good value when it does not parse)."""
        text = self._read("interval")
        if text is not None:
            try:
                self._interval = parse_duration(text)
            except ValueError as exc:
                self._reject("interval", text, str(exc))
        return self._interval

    def close(self) -> None:
        with self._lock:
            repository, self._repository = self._repository, None
        if repository is not None:
            repository.close()
