"""Read a tree of files served over HTTP with directory listings: the old SCAR (nginx), or specman itself.

``HttpTree`` lists a tree by following its autoindex pages — nginx's HTML (``autoindex on``) and JSON
(``autoindex_format json``) formats, and specman's own listing (the same JSON shape, sent when the request
accepts ``application/json``) — one directory level at a time, every directory of a level fetched concurrently.
``hash_files`` then fetches every file, hashing it as it streams (or copying it into a local mirror, also hashed
as it streams), a bounded number at a time: memory does not grow with file sizes.

A listing is untrusted input: names must be single path segments (no ``/``, ``\\``, NUL, ``.`` or ``..``) once
percent-decoded, links to other places (absolute URLs, ``../``, sort links with a query) are ignored, and the
number of entries, the depth and the size of a listing page are bounded.  The HTML is read with the standard
library's ``html.parser`` (tolerant of nginx's unclosed tags), not with regular expressions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import httpx

from specman.errors import ContentError, SpecmanError
from specman.oci.http import TLSOptions, make_client, map_transport_errors

__all__ = ["FileState", "HttpTree", "Listing", "Site", "safe_segment"]

MAX_LISTING_BYTES: Final = 64 << 20
MAX_ENTRIES: Final = 2_000_000
MAX_DEPTH: Final = 64
_ACCEPT: Final = "application/json, text/html;q=0.9, */*;q=0.1"


def safe_segment(name: str) -> bool:
    """Whether ``name`` (decoded) can be one path segment of a tree: nothing that could leave or confuse it."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and len(name) <= 255


@dataclass(frozen=True)
class Listing:
    """One directory page: its files (name → size, -1 when the page does not say) and subdirectories."""

    files: dict[str, int] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FileState:
    """What a fetch found: the body's sha256 and size, and the validator to re-check it cheaply later."""

    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` of a page, with the text that follows it up to the next tag (nginx puts the
    date and the size there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href is not None:
                self.links.append([href, ""])

    def handle_data(self, data: str) -> None:
        if self.links:
            self.links[-1][1] += data


def _html_listing(text: str) -> Listing:
    parser = _Links()
    parser.feed(text)
    parser.close()
    listing = Listing()
    for href, after in parser.links:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or parts.query or parts.fragment or href.startswith("/"):
            continue  # another site, an absolute path, a sort link
        is_dir = parts.path.endswith("/")
        name = unquote(parts.path[:-1] if is_dir else parts.path)
        if not safe_segment(name):
            continue  # ../ and anything that is not a plain child
        if is_dir:
            listing.dirs.append(name)
        else:
            tail = after.split()
            listing.files[name] = int(tail[-1]) if tail and tail[-1].isdigit() else -1
    return listing


def _json_listing(body: Any, where: str) -> Listing:
    if not isinstance(body, list):
        raise ContentError(f"{where}: the JSON listing is not a list")
    listing = Listing()
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ContentError(f"{where}: a JSON listing entry has no name")
        name, kind = item["name"], item.get("type")
        if not safe_segment(name):
            raise ContentError(f"{where}: unsafe name in the listing: {name[:80]!r}")
        if kind == "directory":
            listing.dirs.append(name)
        elif kind == "file":
            size = item.get("size")
            listing.files[name] = size if isinstance(size, int) and size >= 0 else -1
        # other kinds (nginx: "other", e.g. a socket) are not content
    return listing


def _url_path(path: str) -> str:
    return quote(path, safe="/")


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


class HttpTree:
    """A tree served at ``site``, read with one HTTP client per worker thread (threads sharing one connection pool
    wait on its lock, which cost a third of the time of 10,000 small GETs), the TLS context made once and shared.
    ``close`` closes the clients and stops the threads."""

    def __init__(self, site: Site) -> None:
        url = httpx.URL(site.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise SpecmanError(f"{site.name}: {site.base_url!r} is not an http:// or https:// URL")
        self.site = site
        self.base = str(url.copy_with(query=None, fragment=None)).rstrip("/") + "/"
        self.host = url.netloc.decode("ascii")
        self.name = site.name
        self.workers = site.workers
        self._verify = site.tls.ssl_context()  # a bad CA file fails here, once
        self._auth = httpx.BasicAuth(site.username, site.password or "") if site.username else None
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def make_client(self) -> httpx.Client:
        return make_client(self.site.tls, auth=self._auth, timeout=60.0, verify=self._verify)

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The tree's worker threads, kept for its lifetime so that their clients (and connections) are reused."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="specman-fetch")
            return self._pool

    @property
    def client(self) -> httpx.Client:
        """This thread's client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.make_client()
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            clients, self._clients = self._clients, []
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for client in clients:
            client.close()

    def url(self, path: str) -> str:
        return self.base + _url_path(path)

    def _fail(self, what: str, response: httpx.Response) -> SpecmanError:
        hint = {401: " (credentials missing or wrong)", 403: " (forbidden)", 404: " (not found)"}
        return SpecmanError(f"{self.name}: GET {what}: HTTP {response.status_code}{hint.get(response.status_code, '')}")

    def listing(self, directory: str) -> Listing:
        """The entries of ``directory`` ("" for the root, else "a/b/")."""
        what = "/" + _url_path(directory)
        with (
            map_transport_errors(self.host),
            self.client.stream("GET", self.url(directory), headers={"Accept": _ACCEPT}) as response,
        ):
            if response.status_code != 200:
                raise self._fail(what, response)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    raise ContentError(f"{self.name}: the listing of {what} is larger than {MAX_LISTING_BYTES} bytes")
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        text = body.decode("utf-8", errors="replace")
        if kind == "application/json" or text.lstrip().startswith("["):
            try:
                return _json_listing(json.loads(text), f"{self.name} {what}")
            except ValueError:
                raise ContentError(f"{self.name}: the listing of {what} is not valid JSON") from None
        if kind in ("text/html", "") and "<a" in text.lower():
            return _html_listing(text)
        if kind == "text/html":
            return Listing()  # an empty directory: nginx's page has only the "../" link
        raise ContentError(
            f"{self.name}: {what} is not a directory listing ({kind or 'no content type'}); "
            "is autoindex on (nginx: 'autoindex on;')?"
        )

    def walk(self) -> dict[str, int]:
        """Every file of the tree: relative path → size (-1 when the listing does not say), sorted."""
        files: dict[str, int] = {}
        level = [""]
        for depth in range(MAX_DEPTH + 1):
            if not level:
                break
            if depth == MAX_DEPTH:
                raise ContentError(f"{self.name}: the tree is deeper than {MAX_DEPTH} directories")
            following: list[str] = []
            for directory, page in zip(level, self.pool.map(self.listing, level), strict=True):
                for name, size in page.files.items():
                    files[directory + name] = size
                following += [f"{directory}{name}/" for name in page.dirs]
                if len(files) + len(following) > MAX_ENTRIES:
                    raise ContentError(f"{self.name}: more than {MAX_ENTRIES} entries in the tree")
            level = following
        return dict(sorted(files.items()))

    def fetch(
        self,
        path: str,
        *,
        into: Path | None = None,
        progress: Callable[[int], None] | None = None,
        known: FileState | None = None,
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
        with map_transport_errors(self.host), self.client.stream("GET", self.url(path), headers=headers) as response:
            if response.status_code in (304, 404):
                response.read()  # the (empty) rest of the message: the connection stays open for the next request
            if response.status_code == 304 and known is not None:
                if progress:
                    progress(known.size)
                return known
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._fail("/" + _url_path(path), response)
            digest, size = hashlib.sha256(), 0
            out, tmp = None, ""
            if into is not None:
                into.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".specman-", dir=into.parent)
                out = os.fdopen(fd, "wb")
            try:
                encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
                for chunk in response.iter_bytes() if encoded else response.iter_raw():
                    digest.update(chunk)
                    size += len(chunk)
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
                digest.hexdigest(), size, response.headers.get("etag"), response.headers.get("last-modified")
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
        stop = threading.Event()

        def one(path: str) -> FileState | None:
            if stop.is_set():
                raise SpecmanError("cancelled")
            try:
                return self.fetch(
                    path,
                    into=mirror / path if mirror is not None else None,
                    progress=progress,
                    known=(known or {}).get(path),
                )
            except BaseException:
                stop.set()
                raise

        ordered = list(paths)
        return dict(zip(ordered, self.pool.map(one, ordered), strict=True))
