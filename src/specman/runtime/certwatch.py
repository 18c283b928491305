"""Serve a renewed TLS certificate without a restart: watch the certificate and key files from the main process.

granian's workers load the certificate when they start, and granian replaces its workers gracefully on SIGHUP:
for each worker in turn it starts a new one on the shared port (SO_REUSEPORT), waits ``respawn_interval``, then
stops the old one, which finishes its in-flight requests first. ``CertificateWatcher`` polls the files (a
``stat`` of each, following symlinks, every ``interval`` seconds) and, once a change has settled (the same
``stat`` on two polls, so a writer that replaces the certificate and the key one after the other is not caught in
between) and the new content is a certificate and key that load together, calls ``reload`` — which sends SIGHUP
to the main process. A pair that does not load is logged once and the old certificate stays served.

Files are compared by content, so a ``touch`` or a kubelet re-projection of unchanged data restarts nothing.
Kubernetes' Secret volumes replace files by swapping the ``..data`` symlink to a new timestamped directory and
deleting the old one; granian keeps the *resolved* paths, so ``run_asgi`` has granian resolve them again before
the new workers start (its ``on_reload`` hook).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from specman.errors import UsageError

__all__ = ["CertificateWatcher"]

log = logging.getLogger("specman.tls")
Signature = tuple[tuple[int, int, int, int], ...]


class CertificateWatcher:
    """Call ``reload`` when ``cert``/``key`` hold a new, loadable pair (see the module docstring)."""

    def __init__(self, cert: Path, key: Path, reload: Callable[[], None], *, interval: float = 2.0) -> None:
        self.cert, self.key, self.reload, self.interval = cert, key, reload, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded_signature = self._signature()
        self._loaded_digest = self._digest()
        self._pending: Signature | None = None
        self._reported: str | None = None  # the digest (or error) last logged as unusable: logged once

    def _signature(self) -> Signature | None:
        try:
            stats = [os.stat(path) for path in (self.cert, self.key)]
        except OSError:
            return None
        return tuple((s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.cert.read_bytes() + b"\0" + self.key.read_bytes()).hexdigest()
        except OSError:
            return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="specman-certwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # never let the watcher die: it is the only way a renewed certificate is served
                log.exception("watching the TLS certificate %s failed", self.cert)

    def poll(self) -> bool:
        """One check; True when ``reload`` was called."""
        signature = self._signature()
        if signature == self._loaded_signature:
            self._pending = None
            return False
        if signature is None or signature != self._pending:
            self._pending = signature  # changed since the last poll: wait until it settles
            if signature is None:
                self._report("missing", f"cannot read {self.cert} or {self.key}; the old certificate stays served")
            return False
        digest = self._digest()
        if digest is None:
            return False
        if digest == self._loaded_digest:
            self._loaded_signature, self._reported = signature, None  # same content (touched): nothing to do
            return False
        from specman.runtime.tls import server_context

        try:
            server_context(self.cert, self.key)
        except UsageError as exc:
            self._report(digest, f"{exc}; the old certificate stays served")
            return False
        self._loaded_signature, self._loaded_digest, self._reported = signature, digest, None
        log.info("TLS certificate %s changed: replacing the server workers gracefully to serve it", self.cert)
        self.reload()
        return True

    def _report(self, key: str, message: str) -> None:
        if self._reported != key:
            self._reported = key
            log.warning("%s", message)
