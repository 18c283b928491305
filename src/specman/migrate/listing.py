"""Directory listings of a served tree: nginx's HTML (``autoindex on``) and JSON (``autoindex_format json``)
pages, and specman's own listing (the same JSON shape, sent when the request accepts ``application/json``).

A listing is untrusted input: names must be single path segments (no ``/``, NUL, ``.`` or ``..``; a backslash is
an ordinary character of a POSIX name) once percent-decoded, links to other places (absolute URLs, ``../``, sort
links with a query) are ignored.  The HTML is read with the standard library's ``html.parser`` (tolerant of nginx's
unclosed tags), not with regular expressions.  An HTML page that is not a listing (its title is not nginx's
``Index of /dir/``, nor ``Directory listing for``) is refused: nginx answers a directory holding an ``index.html``
with that page, which hides the directory's files from any crawler — such a tree must be migrated from its
directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

from specman.errors import ContentError

__all__ = ["Listing", "parse_listing", "safe_segment"]


def safe_segment(name: str) -> bool:
    """Whether ``name`` (decoded) can be one path segment of a tree: nothing that could leave or confuse it."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\0") and len(name) <= 255


@dataclass(frozen=True)
class Listing:
    """One directory page: its files (name → size, -1 when the page does not say) and subdirectories."""

    files: dict[str, int] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` of a page, with the text that follows it up to the next tag (nginx puts the
    date and the size there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[list[str]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_title = tag == "title"
        if tag == "a":
            href = dict(attrs).get("href")
            if href is not None:
                self.links.append([href, ""])

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self.links:
            self.links[-1][1] += data


_LISTING_TITLES = ("index of ", "directory listing for ")


def _page_title(text: str) -> str:
    parser = _Links()
    parser.feed(text)
    parser.close()
    return " ".join(parser.title.split())


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


def parse_listing(body: bytes, content_type: str, where: str) -> Listing:
    """The listing in ``body`` (a page whose media type is ``content_type``); ``where`` names it in errors."""
    kind = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if kind == "application/json" or text.lstrip().startswith("["):
        try:
            return _json_listing(json.loads(text), where)
        except ValueError:
            raise ContentError(f"{where}: the listing is not valid JSON") from None
    if kind in ("text/html", ""):
        title = _page_title(text)
        if not title.lower().startswith(_LISTING_TITLES):
            raise ContentError(
                f"{where}: a page, not a directory listing (title {title[:60]!r}): the server answers this directory "
                "with its index.html, which hides its files; migrate from the directory itself (--from DIR)"
            )
        return _html_listing(text)  # an empty directory: nginx's page has only the "../" link
    raise ContentError(
        f"{where}: not a directory listing ({kind or 'no content type'}); is autoindex on (nginx: 'autoindex on;')?"
    )
