"""The specman service as ``migrate`` sees it from outside: over HTTPS, as the clusters will.

``SpecmanEndpoint`` reads ``/_specman/status`` (which repository it syncs, which digest each tag has), wakes it with a
registry notification (``POST /_specman/notify`` with its bearer token, the same envelope the registry sends) and
waits until a tag is served at the pushed digest.  Its ``tree`` and ``version_tree`` are ``HttpTree`` views of the
merged view and of one version, for the parity proof.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from specman.errors import SpecmanError
from specman.migrate.crawl import HttpTree, Site
from specman.oci.http import TLSOptions, make_client, map_transport_errors
from specman.oci.manifest import OCI_MANIFEST

__all__ = ["SpecmanEndpoint"]


class SpecmanEndpoint:
    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        workers: int = 8,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SpecmanError(f"--specman {url!r}: expected https://HOST[:PORT]")
        self.url = str(parsed).rstrip("/")
        self.host = parsed.netloc.decode("ascii")
        self.ca_file = ca_file
        self.tls = TLSOptions(insecure=insecure, ca_file=ca_file)
        self.username, self.password = username, password  # serve's --basic-auth-file: the SCAR credentials
        auth = httpx.BasicAuth(username, password or "") if username else None
        self.client = make_client(self.tls, auth=auth, timeout=60.0)
        self.workers = workers

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str) -> httpx.Response:
        with map_transport_errors(self.host):
            return self.client.get(self.url + path, headers={"Accept": "application/json"})

    def status(self) -> dict[str, Any]:
        response = self._get("/_specman/status")
        if response.status_code != 200:
            raise SpecmanError(f"specman {self.host}: /_specman/status: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("tags", {}), dict):
            raise SpecmanError(f"specman {self.host}: /_specman/status is not specman's status (is this specman?)")
        return body

    def check(self) -> dict[str, Any]:
        """Reachable, healthy and specman: its status."""
        response = self._get("/healthz")
        if response.status_code != 200:
            raise SpecmanError(f"specman {self.host}: /healthz answered HTTP {response.status_code}")
        return self.status()

    def notify(self, token: str, repository: str, tag: str, digest: str) -> bool:
        """Send the registry's own kind of notification; True when specman took it (202/200)."""
        envelope = {
            "events": [
                {
                    "action": "push",
                    "target": {"mediaType": OCI_MANIFEST, "repository": repository, "tag": tag, "digest": digest},
                }
            ]
        }
        with map_transport_errors(self.host):
            response = self.client.post(
                self.url + "/_specman/notify",
                json=envelope,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/vnd.docker.distribution.events.v1+json",
                },
            )
        return response.status_code in (200, 202)

    def wait_served(
        self, tag: str, digest: str, timeout: float, *, poll: float = 0.25, report: Callable[[str], None] | None = None
    ) -> float:
        """Seconds until ``tag`` is served at ``digest``; ``SpecmanError`` after ``timeout`` saying what it serves.
        A sync that fails meanwhile is told to ``report`` (once per distinct error) while the wait goes on."""
        started = time.monotonic()
        seen: str | None = None
        first_runs: object = None
        told: set[str] = set()
        last_error = ""
        while True:
            try:
                status = self.status()
            except SpecmanError:
                status = {}  # restarting: keep waiting
            value = (status.get("tags") or {}).get(tag)
            seen = value.get("digest") if isinstance(value, dict) else value
            if seen == digest:
                return time.monotonic() - started
            sync = status.get("sync") or {}
            first_runs = sync.get("runs") if first_runs is None else first_runs
            last_error = str(sync.get("last_error") or "")
            if last_error and sync.get("runs") != first_runs and last_error not in told:
                told.add(last_error)
                if report is not None:
                    report(f"specman's sync failed: {last_error} (it retries; waiting up to {timeout:.0f} s)")
            if time.monotonic() - started > timeout:
                now = f"it serves {seen}" if seen else "it does not serve that tag"
                failed = f"; its last sync failed: {last_error}" if last_error else ""
                raise SpecmanError(
                    f"specman {self.host} did not serve {tag} at {digest} within {timeout:.0f} s ({now}{failed})"
                )
            time.sleep(poll)

    def tree(self) -> HttpTree:
        """The merged view (the caller closes it)."""
        return HttpTree(
            Site(self.url + "/", f"specman {self.host}", self.tls, self.username, self.password, self.workers)
        )

    def version_tree(self, tag: str) -> HttpTree:
        """One tag's version alone (the caller closes it)."""
        base = f"{self.url}/_specman/versions/{quote(tag, safe='')}/"
        name = f"specman {self.host} version {tag}"
        return HttpTree(Site(base, name, self.tls, self.username, self.password, self.workers))

    @property
    def ca_pem(self) -> str:
        """The CA the console must trust to read from specman (``--specman-ca-file``), as PEM text, or ""."""
        if not self.ca_file:
            return ""
        try:
            return Path(self.ca_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecmanError(f"cannot read --specman-ca-file {self.ca_file}: {exc}") from None
