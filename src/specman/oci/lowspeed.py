"""A low-speed limit for registry connections (curl's ``--speed-limit``/``--speed-time``), against slow-loris peers.

httpx's timeouts bound each socket read, so a server that sends one byte every second never times out: a
reply (head or body) trickled that way would hold a sync forever.  ``LowSpeedTransport`` is an
``httpx.HTTPTransport`` whose connections count the bytes they receive: once a reply has begun, every
``window`` seconds it must have delivered at least ``limit`` bytes per second, else the read fails with
``httpcore.ReadTimeout`` — a timeout like any other, which ``send`` retries and ``BlobReader`` resumes with
``Range``.  The wait for a reply's first byte is left to the read timeout (a registry may think before it
answers), and each request sent on a kept-alive connection starts afresh.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["LOW_SPEED_LIMIT", "LOW_SPEED_TIME", "LowSpeedTransport", "SpeedWindow", "proxy_mounts"]

LOW_SPEED_LIMIT = 1024  # bytes per second
LOW_SPEED_TIME = 10.0  # seconds


class SpeedWindow:
    """The low-speed rule for one reply: from its creation, every ``window`` seconds at least ``limit`` bytes per
    second.  ``slow(size)`` counts the bytes just received and returns what was measured when the rule is broken,
    else None.  Used by ``LowSpeedTransport`` and by ``migrate``'s aiohttp tree reader."""

    def __init__(self, limit: int = LOW_SPEED_LIMIT, window: float = LOW_SPEED_TIME) -> None:
        self.limit, self.window = limit, window
        self.since, self.count = time.monotonic(), 0

    def slow(self, size: int) -> str | None:
        self.count += size
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed < self.window:
            return None
        if self.count < self.limit * elapsed:
            return f"the server sent {self.count} bytes in {elapsed:.0f} s (less than {self.limit} bytes/s)"
        self.since, self.count = now, 0
        return None


class LowSpeedTimeout(httpcore.ReadTimeout):
    """A reply broke the low-speed rule; its message says what was measured.  Its own class so that the error
    mapping recognises it by type (``specman.oci.http.classify_transport_error``)."""


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, limit: int, window: float) -> None:
        self._inner = inner
        self._limit = limit
        self._window = window
        self._speed: SpeedWindow | None = None  # None: no reply byte since the last request was sent

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, timeout)
        if self._speed is None:
            self._speed = SpeedWindow(self._limit, self._window)  # the reply has begun: its first bytes start it
            return data
        if (measured := self._speed.slow(len(data))) is not None:
            raise LowSpeedTimeout(measured)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._speed = None
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._limit, self._window)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.SyncBackend):
    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self._limit, self._window)


class LowSpeedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (HTTP/1.1, no proxy) whose connections enforce the low-speed limit."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool,
        limits: httpx.Limits,
        limit: int = LOW_SPEED_LIMIT,
        window: float = LOW_SPEED_TIME,
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(limit, window),
        )


def proxy_mounts(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> dict[str, httpx.BaseTransport | None]:
    """The proxies of the environment (``HTTPS_PROXY``, ``NO_PROXY``…) as httpx would mount them itself — it stops
    reading them once a client is given its own transport, as ``make_client`` does.  Requests through a proxy
    use a plain ``HTTPTransport``: the proxy, not the registry, is the peer whose speed is seen there.  The mapping
    comes from httpx's own ``get_environment_proxies`` (not public API; httpx is pinned by the lock file), so the
    rules (schemes, ``NO_PROXY`` hosts and domains) are exactly httpx's."""
    from httpx._utils import get_environment_proxies

    return {
        pattern: None if url is None else httpx.HTTPTransport(proxy=url, verify=verify, limits=limits)
        for pattern, url in get_environment_proxies().items()
    }
