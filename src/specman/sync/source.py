"""Where the sync reads from when the console names the registry (``specman serve --console URL``).

``ConsoleSource()`` is called once per reconcile: it asks the console for the registry marked "Contains Spectro
Manifests" (``ConsoleClient.spectro_source``) and returns a ``Repository`` for it, built again only when the
console's answer changed (endpoint, repository, credentials, CA, TLS flags) — so an operator's edit in the console
applies at the next sync, without a restart.  When the console cannot be reached, the last registry it named is
used (logged once per outage); with none yet, or when the console says no registry is marked, the reconcile fails
with a ``SyncError`` and the data on disk stays served.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from specman.console.client import ConsoleClient, SpectroSource
from specman.errors import ConsoleError, SpecmanError, SyncError, TransportError
from specman.oci import RegistryOptions, Repository, open_repository, parse_reference

__all__ = ["ConsoleSource"]

log = logging.getLogger("specman.sync")


class ConsoleSource:
    """A callable giving the repository to sync now, as the console names it."""

    def __init__(self, client: ConsoleClient, options: RegistryOptions) -> None:
        self.client = client
        self.options = options  # retry, timeouts; credentials and TLS come from the console
        self.display = f"console:{client.base_url}"
        self._lock = threading.Lock()
        self._source: SpectroSource | None = None
        self._repository: Repository | None = None
        self._unreachable = False

    def __call__(self) -> Repository:
        try:
            source = self.client.spectro_source()
        except (TransportError, ConsoleError) as exc:
            unreachable = exc.retryable  # down or failing on its side (not: refused the token, or no such source)
            with self._lock:
                repository = self._repository if unreachable else None
                first = not self._unreachable
                self._unreachable = unreachable
            if repository is None:
                reason = "ConsoleUnavailable" if unreachable else "NoSourceInConsole"
                raise SyncError(str(exc), reason=reason, retryable=unreachable) from exc
            if first:
                log.warning(
                    "Console unreachable: syncing from the registry it named last",
                    extra={"fields": {"error": str(exc)}},
                )
            return repository
        with self._lock:
            self._unreachable = False
            if source == self._source and self._repository is not None:
                return self._repository
            old, self._repository = self._repository, self._open(source)
            self._source = source
        if old is not None:
            old.close()
        log.info(
            "Source from the console", extra={"fields": {"repository": source.reference, "username": source.username}}
        )
        return self._repository

    def _open(self, source: SpectroSource) -> Repository:
        options = replace(
            self.options,
            username=source.username or None,
            password=source.password or None,
            password_file=None,
            plain_http=source.plain_http,
            insecure=source.insecure,
            ca_file=None,
            ca_data=source.ca_cert,
            oci_layout=False,
        )
        try:
            return open_repository(parse_reference(source.reference), options)
        except SpecmanError as exc:
            raise SyncError(
                f"the console's registry {source.reference}: {exc}", reason="BadSourceInConsole", retryable=False
            ) from exc

    def close(self) -> None:
        with self._lock:
            repository, self._repository = self._repository, None
        if repository is not None:
            repository.close()
        self.client.close()
