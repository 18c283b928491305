"""File responses for the server: content types, content-derived ETags, directory listings, bodies and ranges.

``send_file`` answers a regular file: whole files with the ASGI ``http.response.pathsend`` extension when the
server offers it (granian then sends the file without copying it through Python), otherwise in chunks read in
a worker thread; one range → 206 + ``Content-Range``, several → ``multipart/byteranges``; no body for HEAD.

ETags (``ETags``): the sha256 of the file's content (first 32 hex digits) — recorded on the file by the
extraction (``specman.archive.digests``), else computed once per file — and cached by ``(device, inode, size,
mtime)``.  Content identity is what a client cache cares about; it is the same on every
replica for the same bytes whatever order the replica synced its tags in, and because generations hard-link
version files the cache entry survives a new generation (an unchanged file keeps its inode).  Deriving it from
the winning version's digest instead would need the per-path winner, which generation records do not keep.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import os
import secrets
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote_to_bytes

import anyio.to_thread
from starlette.types import Scope, Send

from specman.archive.digests import recorded
from specman.server.conditional import http_date
from specman.server.paths import RequestPath, confine

__all__ = [
    "ETags",
    "FileEntry",
    "FileIndex",
    "content_type",
    "display_name",
    "html_listing",
    "listing",
    "send_file",
    "send_whole_file",
    "url_quote",
]

_CHUNK: Final = 256 * 1024
_ETAG_CACHE_SIZE: Final = 4096
_INDEX_SIZE: Final = 4096  # about 3 KiB an entry: ~12 MiB a worker at most
_TYPES: Final = {
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".json": "application/json",
    ".md": "text/markdown",
    ".txt": "text/plain",
}
_TEXT_TYPES: Final = ("application/yaml", "application/json", "application/xml", "application/javascript")
# ``mimetypes`` reports ``x.tar.gz`` as an x-tar "encoded" with gzip; the bytes served are the compressed ones
_ENCODINGS: Final = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def content_type(name: str) -> str:
    """The Content-Type for a file name: specman's table, then ``mimetypes`` (a compressed file is labelled by
    its compression: ``.tgz``, ``.tar.gz``, ``.json.gz`` are ``application/gzip``); charset=utf-8 for text."""
    suffix = os.path.splitext(name)[1].lower()
    kind = _TYPES.get(suffix)
    if kind is None:
        guessed, encoding = mimetypes.guess_type(name, strict=False)
        kind = _ENCODINGS.get(encoding or "") or guessed or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def url_quote(name: str) -> str:
    """One name percent-encoded for a URL path: every byte but unreserved ones escaped (``#``, ``?``, ``%``,
    ``\\``, spaces, ``:`` included), names that are not UTF-8 as the bytes they are (``os.fsdecode`` form)."""
    return quote(name.encode("utf-8", "surrogateescape"), safe="")


def display_name(name: str) -> str:
    """``name`` as text to show (bytes that are not UTF-8 shown as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class ETags:
    """Content-derived strong ETags, cached by file identity (an LRU of ``_ETAG_CACHE_SIZE`` entries)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        digest = recorded(path, st)  # by the extraction, usually: no hashing here
        if digest is None:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        tag = f'"{digest[:32]}"'
        with self._lock:
            self._cache[key] = tag
            while len(self._cache) > _ETAG_CACHE_SIZE:
                self._cache.popitem(last=False)
        return tag


@dataclass(frozen=True, slots=True)
class FileEntry:
    """What a response needs to know about one served path (files: everything for the headers)."""

    target: Path
    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""
    raw_headers: tuple[tuple[bytes, bytes], ...] = ()  # of a 200 answer with the whole file, ready to send


class FileIndex:
    """Lookups of request paths in published trees, cached: a hit costs no system call and no thread hop.

    Published trees never change (a new generation or version is a new directory), so an entry keyed by the
    tree's path and the request's names stays right as long as that tree is served; the LRU bound (and new
    trees having new paths) retire old entries.  Misses (and 404s, which are not cached) do the file-system
    work — ``confine``, ``stat``, the content ETag — in one worker thread.
    """

    def __init__(self, size: int = _INDEX_SIZE) -> None:
        self.size = size
        self.etags = ETags()
        self._entries: OrderedDict[tuple[str, tuple[str, ...]], FileEntry] = OrderedDict()

    async def lookup(self, root: Path, path: RequestPath) -> FileEntry | None:
        key = (str(root), path.names)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = await anyio.to_thread.run_sync(self._resolve, root, path)
        if entry is not None:
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def _resolve(self, root: Path, path: RequestPath) -> FileEntry | None:
        target = confine(root, path)
        if target is None:
            return None
        st = os.stat(target)
        if stat.S_ISDIR(st.st_mode):
            return FileEntry(target, is_dir=True)
        if not stat.S_ISREG(st.st_mode):
            return None
        etag, modified, kind = self.etags.get(target, st), http_date(st.st_mtime), content_type(target.name)
        headers = {
            "etag": etag,
            "last-modified": modified,
            "accept-ranges": "bytes",
            "cache-control": "no-cache",
            "content-type": kind,
            "content-length": str(st.st_size),
        }
        raw = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        return FileEntry(target, False, st.st_size, st.st_mtime, etag, modified, kind, raw)


def listing(root: Path, directory: Path) -> list[dict[str, Any]]:
    """Entries of ``directory`` (inside ``root``) sorted as nginx's autoindex sorts them (directories first,
    then by name); dot files are listed (nginx hides them); symlinks leading out of ``root`` and dangling ones
    are left out (they are not served)."""
    real_root = os.path.realpath(root)
    entries: list[dict[str, Any]] = []
    with os.scandir(directory) as scan:
        for entry in scan:
            target = os.path.realpath(entry.path)
            if os.path.commonpath((real_root, target)) != real_root:
                continue
            try:
                st = os.stat(target)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and not stat.S_ISREG(st.st_mode):
                continue
            entries.append(
                {
                    "name": display_name(entry.name),
                    "href": url_quote(entry.name) + ("/" if is_dir else ""),
                    "type": "directory" if is_dir else "file",
                    "size": 0 if is_dir else st.st_size,
                    "mtime": http_date(st.st_mtime),
                }
            )
    entries.sort(key=lambda item: (item["type"] != "directory", unquote_to_bytes(item["href"])))
    return entries


def html_listing(url_path: str, entries: list[dict[str, Any]]) -> str:
    title = html.escape(f"Index of {url_path}")
    rows = ['<a href="../">../</a>']  # at the root too, as nginx (it resolves to the root)
    for item in entries:
        name = item["name"] + ("/" if item["type"] == "directory" else "")
        size = "-" if item["type"] == "directory" else str(item["size"])
        link = html.escape(item["href"], quote=True)
        rows.append(f'<a href="{link}">{html.escape(name)}</a> {item["mtime"]} {size}')
    body = "\n".join(rows)
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1><hr><pre>\n{body}\n</pre><hr></body></html>\n"
    )


def _read_range(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(length)


async def send_whole_file(scope: Scope, send: Send, entry: FileEntry) -> None:
    """200 with the whole file (no body for HEAD): the hot path, with the headers ``FileIndex`` prepared."""
    await send({"type": "http.response.start", "status": 200, "headers": entry.raw_headers})
    await _send_body(scope, send, entry.target, [], entry.size, b"")


async def send_file(
    scope: Scope, send: Send, path: Path, headers: dict[str, str], size: int, ranges: list[tuple[int, int]] | None
) -> None:
    """Send the file (or its ``ranges``) with ``headers``; the body is left out for HEAD."""
    status = 200
    parts: list[tuple[bytes, int, int]] = []  # (preamble, start, end_inclusive)
    epilogue = b""
    if ranges is not None and len(ranges) == 1:
        status = 206
        start, end = ranges[0]
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        parts.append((b"", start, end))
    elif ranges is not None:
        status = 206
        boundary = secrets.token_hex(12)
        kind = headers.pop("Content-Type")
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        for start, end in ranges:
            text = f"\r\n--{boundary}\r\nContent-Type: {kind}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\r\n"
            parts.append((text.encode(), start, end))
        epilogue = f"\r\n--{boundary}--\r\n".encode()
        total = sum(len(p) + end - start + 1 for p, start, end in parts) + len(epilogue)
        headers["Content-Length"] = str(total)
    else:
        headers["Content-Length"] = str(size)
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await _send_body(scope, send, path, parts, size, epilogue)


async def _send_body(
    scope: Scope, send: Send, path: Path, parts: list[tuple[bytes, int, int]], size: int, epilogue: bytes
) -> None:
    """The body after the headers: none for HEAD; the whole file by ``pathsend``; else ``parts`` in chunks."""
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if not parts and "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": str(path)})
        return
    for preamble, start, end in parts or [(b"", 0, size - 1)]:
        if preamble:
            await send({"type": "http.response.body", "body": preamble, "more_body": True})
        offset = start
        while offset <= end:
            length = min(_CHUNK, end - offset + 1)
            chunk = await anyio.to_thread.run_sync(_read_range, path, offset, length)
            if not chunk:
                break
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": epilogue, "more_body": False})
