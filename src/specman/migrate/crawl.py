"""Read a tree of files served over HTTP with directory listings: the old SCAR (nginx), or specman itself.

``HttpTree`` lists a tree by following its listing pages (``specman.migrate.listing``), one directory level at a
time, every directory of a level fetched concurrently, then fetches every file, hashing it as it streams (or
copying it into a local mirror, also hashed as it streams), ``workers`` at a time: memory does not grow with
file sizes.  The number of entries, the depth and the size of a listing page are bounded.

Why aiohttp here and httpx everywhere else: a migration reads every file of the tree two or three times (the
copy, the parity proof's second reading of the source and its reading of specman), and on a small machine the
client's CPU is what bounds it.  Measured on this project's 2-core machine, 10,000 files / 1 GiB over TLS from
``specman serve``: httpx (8 threads, one client each) 13.1 s of client CPU and 15.0 s wall, urllib3 6.3 s and
10.1 s, aiohttp (its HTTP parser is C) 4.2 s and 7.5 s — and the server got more of the CPU too.  So this bulk
reader runs one ``aiohttp.ClientSession`` on an event loop of its own (a daemon thread, started on first use);
its methods are synchronous and may be called from any thread.  Registry and API calls stay on specman's httpx
clients (``specman.oci.http``), whose TLS options, proxy rules, error messages and low-speed limit this module
applies the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import tempfile
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from urllib.parse import quote, urlsplit

from specman.errors import ContentError, SpecmanError
from specman.migrate.listing import Listing, parse_listing, safe_segment
from specman.oci.http import USER_AGENT, TLSOptions, describe_transport_error, transport_error
from specman.oci.lowspeed import LowSpeedTimeout, SpeedWindow

if TYPE_CHECKING:  # imported where used: the CLI imports this module (through quickstart) for every command,
    import aiohttp  # which would otherwise all pay aiohttp's ~14 MiB and import time

__all__ = ["FileState", "HttpTree", "Listing", "Site", "safe_segment"]

MAX_LISTING_BYTES: Final = 64 << 20
MAX_ENTRIES: Final = 2_000_000
MAX_DEPTH: Final = 64
HEAD_TIMEOUT: Final = 60.0  # connect, send, and the reply's status line and headers
_ACCEPT: Final = "application/json, text/html;q=0.9, */*;q=0.1"
_CHUNK: Final = 256 << 10
_SMALL: Final = 64 << 10
T = TypeVar("T")
X = TypeVar("X")


@dataclass(frozen=True)
class FileState:
    """What a fetch found: the body's sha256 and size, and the validator to re-check it cheaply later."""

    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Site:
    """Where a tree is and how to reach it: its root URL, TLS, Basic credentials, ``workers`` requests at a time,
    and ``name`` for errors ("the SCAR ...", "specman ...").  Plain data, so a helper process can reach it too."""

    base_url: str
    name: str
    tls: TLSOptions = field(default_factory=TLSOptions)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    workers: int = 8


def _url_path(path: str) -> str:
    return quote(path, safe="/")


def _env_proxy(scheme: str, hostname: str) -> str | None:
    """The proxy the environment names for this site (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``), as httpx
    reads it; not ``trust_env``, which would also send ``~/.netrc`` credentials."""
    if urllib.request.proxy_bypass(hostname):
        return None
    return urllib.request.getproxies().get(scheme)


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    """What went wrong in a connection attempt, as specman's httpx clients say it ("connection refused", "TLS
    certificate verification failed: ...") rather than aiohttp's "Connect call failed"."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return describe_transport_error(exc.certificate_error)
    cause = exc.os_error
    if cause.errno and not isinstance(cause, ssl.SSLError):
        return describe_transport_error(OSError(cause.errno, os.strerror(cause.errno)))
    return describe_transport_error(cause)


class HttpTree:
    """A tree served at ``site`` (see the module docstring).  ``close`` closes the session and stops its loop."""

    def __init__(self, site: Site) -> None:
        parts = urlsplit(site.base_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise SpecmanError(f"{site.name}: {site.base_url!r} is not an http:// or https:// URL")
        self.site = site
        self.base = parts._replace(query="", fragment="").geturl().rstrip("/") + "/"
        self.host = parts.netloc.rpartition("@")[2]
        self.name = site.name
        self.workers = site.workers
        self._ssl = site.tls.ssl_context()  # a bad CA file fails here, once
        self._proxy = _env_proxy(parts.scheme.lower(), parts.hostname)
        import aiohttp

        self._auth = aiohttp.BasicAuth(site.username, site.password or "", "utf-8") if site.username else None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- the event loop ------------------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the tree's loop and wait for it; an interrupt (Ctrl-C) of the waiting thread cancels it."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="specman-fetch", daemon=True)
                self._thread.start()
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _session_now(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.workers, ssl=self._ssl),
                auth=self._auth,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=60.0),
            )
        return self._session

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return

        async def close_session() -> None:
            if self._session is not None:
                await self._session.close()
                self._session = None

        asyncio.run_coroutine_threadsafe(close_session(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

    # -- requests ------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base + _url_path(path)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """aiohttp's and the OS's transport failures as ``TransportError`` lines naming the host."""
        import aiohttp

        try:
            yield
        except (TimeoutError, LowSpeedTimeout) as exc:
            raise transport_error(self.host, exc, "timeout") from exc
        except aiohttp.ClientConnectorError as exc:
            raise transport_error(self.host, exc, "connect", _connect_reason(exc)) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise transport_error(self.host, exc, "broken") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(self.host, exc, "other") from exc

    async def _get(self, path: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET ``path``: the reply with its head read (bounded by ``HEAD_TIMEOUT``), its body still to read."""
        import yarl

        async with asyncio.timeout(HEAD_TIMEOUT):
            return await self._session_now().get(
                yarl.URL(self.url(path), encoded=True), headers=headers, proxy=self._proxy
            )

    def _fail(self, what: str, status: int) -> SpecmanError:
        hint = {401: " (credentials missing or wrong)", 403: " (forbidden)", 404: " (not found)"}
        return SpecmanError(f"{self.name}: GET {what}: HTTP {status}{hint.get(status, '')}")

    async def _listing(self, directory: str) -> Listing:
        what = "/" + _url_path(directory)
        with self._errors():
            async with await self._get(directory, {"Accept": _ACCEPT}) as response:
                if response.status != 200:
                    raise self._fail(what, response.status)
                body, speed = bytearray(), SpeedWindow()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if (measured := speed.slow(len(chunk))) is not None:
                        raise LowSpeedTimeout(measured)  # a trickling server cannot hold a fetch
                    if len(body) > MAX_LISTING_BYTES:
                        raise ContentError(
                            f"{self.name}: the listing of {what} is larger than {MAX_LISTING_BYTES} bytes"
                        )
                kind = response.headers.get("Content-Type", "")
        return parse_listing(bytes(body), kind, f"{self.name}: the listing of {what}")

    def listing(self, directory: str) -> Listing:
        """The entries of ``directory`` ("" for the root, else "a/b/")."""
        return self._run(self._listing(directory))

    async def _walk(self) -> dict[str, int]:
        files: dict[str, int] = {}
        level = [""]
        for depth in range(MAX_DEPTH + 1):
            if not level:
                break
            if depth == MAX_DEPTH:
                raise ContentError(f"{self.name}: the tree is deeper than {MAX_DEPTH} directories")
            following: list[str] = []
            pages = await _map(self._listing, level, self.workers)
            for directory, page in zip(level, pages, strict=True):
                for name, size in page.files.items():
                    files[directory + name] = size
                following += [f"{directory}{name}/" for name in page.dirs]
                if len(files) + len(following) > MAX_ENTRIES:
                    raise ContentError(f"{self.name}: more than {MAX_ENTRIES} entries in the tree")
            level = following
        return dict(sorted(files.items()))

    def walk(self) -> dict[str, int]:
        """Every file of the tree: relative path → size (-1 when the listing does not say), sorted."""
        return self._run(self._walk())

    async def _fetch(
        self, path: str, into: Path | None, progress: Callable[[int], None] | None, known: FileState | None
    ) -> FileState | None:
        """Fetch ``path``, hashing it while it streams (and writing it to ``into``, atomically); ``None`` when the
        server says 404.  With ``known`` (a previous fetch), the server is asked whether it changed since
        (``If-None-Match``/``If-Modified-Since``) and a 304 returns ``known`` without a body."""
        headers = {"Accept-Encoding": "identity"}  # the bytes as stored: hashed as they arrive, no decoding copy
        if known is not None and into is None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        with self._errors():
            async with await self._get(path, headers) as response:
                if response.status in (304, 404) and (response.content_length or 0) <= _SMALL:
                    await response.read()  # the (empty or short) rest: the connection stays open for the next
                if response.status == 304 and known is not None:
                    if progress:
                        progress(known.size)
                    return known
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise self._fail("/" + _url_path(path), response.status)
                digest, size, speed = hashlib.sha256(), 0, SpeedWindow()
                out, tmp = None, ""
                if into is not None:  # small blocking writes on the loop: measured cheaper than thread hops
                    into.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(prefix=".specman-", dir=into.parent)
                    out = os.fdopen(fd, "wb")
                try:
                    async for chunk in response.content.iter_chunked(_CHUNK):  # decoded if the server encoded it
                        digest.update(chunk)
                        size += len(chunk)
                        if (measured := speed.slow(len(chunk))) is not None:
                            raise LowSpeedTimeout(measured)  # a trickling server cannot hold a fetch
                        if out is not None:
                            out.write(chunk)
                        if progress:
                            progress(len(chunk))
                    if out is not None and into is not None:
                        out.close()
                        os.replace(tmp, into)
                        out = None
                finally:
                    if out is not None:  # failed half-way: no partial file is left
                        out.close()
                        os.unlink(tmp)
                return FileState(
                    digest.hexdigest(), size, response.headers.get("ETag"), response.headers.get("Last-Modified")
                )

    def fetch_all(
        self,
        paths: Iterable[str],
        *,
        mirror: Path | None = None,
        progress: Callable[[int], None] | None = None,
        known: dict[str, FileState] | None = None,
    ) -> dict[str, FileState | None]:
        """``fetch`` every path, ``workers`` at a time; the first failure cancels the rest and is raised."""
        ordered = list(paths)
        states = known or {}

        async def one(path: str) -> FileState | None:
            return await self._fetch(path, mirror / path if mirror is not None else None, progress, states.get(path))

        return dict(zip(ordered, self._run(_map(one, ordered, self.workers)), strict=True))


async def _map(func: Callable[[X], Awaitable[T]], items: Sequence[X], workers: int) -> list[T]:
    """``func`` of every item, ``workers`` at a time (as many tasks, each taking the next item), results in order;
    the first failure cancels the others and is raised as itself (not wrapped in an ``ExceptionGroup``)."""
    results: list[Any] = [None] * len(items)
    indices = iter(range(len(items)))

    async def worker() -> None:
        for index in indices:
            results[index] = await func(items[index])

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(workers, len(items))):
                group.create_task(worker())
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return cast(list[T], results)
