"""Request path → file inside a served tree, immune to traversal tricks.  All checks live here, in one place.

``parse_request_path`` works on the raw bytes of the request target's path (still percent-encoded; granian
passes them as ``raw_path``) and decodes them exactly once, as UTF-8 — a client that sends raw UTF-8 bytes
instead of percent-escapes gets the same file:

* an encoded ``/`` (``%2f``) is refused (400): a name never contains a slash, and decoding it would change the
  path's structure (proxies disagree on what it means);
* a backslash (raw or ``%5c``) is an ordinary character of a name on POSIX file systems, as nginx serves it:
  ``a\\..\\b`` names one file, never a parent directory;
* bytes that are not UTF-8 stay the bytes they are (``surrogateescape``, as ``os.fsdecode``): a tree may hold
  such names, and they reach exactly that file; overlong forms such as ``%c0%ae`` are no ``.`` (they name a
  file that does not exist, 404);
* NUL and other control characters are refused (400): no name in a tree holds them (the extractor refuses them);
* ``.`` segments and empty segments are dropped; any ``..`` segment is refused (400) — even one that would stay
  inside the tree;
* what remains is a tuple of plain names.  A double-encoded ``%252e%252e`` decodes to the literal name
  ``%2e%2e``: harmless, it names no file.

Length: a name longer than ``NAME_MAX`` (255 bytes) cannot exist (404 by lookup); a decoded path longer than
``PATH_MAX`` (4096 bytes) is refused with 414, as is a raw target over ``MAX_RAW_PATH`` (each byte of a name may
take three encoded characters and four-byte UTF-8 characters twelve, so the raw limit sits far above 4096).

``confine`` joins the names to a root and resolves symlinks (``real_path``: the kernel's resolution): a symlink
inside the content that points outside the tree yields None (the caller answers 404, as nginx with
``disable_symlinks if_not_owner`` would refuse), as does anything that does not exist.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_PATH", "MAX_RAW_PATH", "PathRejected", "RequestPath", "confine", "parse_request_path"]

_ENCODED_SEPARATOR = re.compile(rb"%2f", re.IGNORECASE)
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH = 4096  # bytes of the decoded path (Linux PATH_MAX)
MAX_RAW_PATH = 65536  # characters of the raw, encoded path (hyper itself refuses targets near 64 KiB)


class PathRejected(ValueError):
    """A request path no file can have; ``status`` is the HTTP status to answer (400)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class RequestPath:
    """A decoded, checked request path: its names, and whether it asked for a directory (trailing slash)."""

    names: tuple[str, ...]
    directory: bool

    @property
    def relative(self) -> str:
        return "/".join(self.names)


def parse_request_path(raw: bytes | str) -> RequestPath:
    """Decode and check the raw path of a request target (no query string): bytes as received, or text (which
    is taken as its UTF-8 encoding)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if not data.startswith(b"/"):
        raise PathRejected("the path must start with /")
    if len(data) > MAX_RAW_PATH:
        raise PathRejected(f"the path is longer than {MAX_RAW_PATH} characters", status=414)
    if _ENCODED_SEPARATOR.search(data):
        raise PathRejected("encoded slashes are not allowed in paths")
    if _BAD_PERCENT.search(data):
        raise PathRejected("malformed percent-encoding")
    unquoted = unquote_to_bytes(data)
    if len(unquoted) > MAX_PATH:
        raise PathRejected(f"the decoded path is longer than {MAX_PATH} bytes", status=414)
    decoded = unquoted.decode("utf-8", "surrogateescape")  # other bytes name files as the bytes they are
    if _CONTROL.search(decoded):
        raise PathRejected("control characters are not allowed in paths")
    names: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise PathRejected("'..' is not allowed in paths")
        names.append(segment)
    return RequestPath(tuple(names), directory=decoded.endswith("/") or not names)


_O_PATH: int | None = getattr(os, "O_PATH", None)
_PROC_FD = "/proc/self/fd/"


def real_path(path: str) -> str | None:
    """The canonical path of an existing ``path`` (every symlink followed), or None when it does not exist.

    Where the kernel offers it (Linux with /proc), the kernel resolves the path: one ``open(O_PATH)`` and a
    ``readlink`` of ``/proc/self/fd/N`` — where ``os.path.realpath`` makes an ``lstat`` per component in Python
    (measured: 95 µs against ~10 µs for a path 12 names deep: a third of a cold request's cost).  Elsewhere (or
    when /proc is not mounted) ``realpath`` then ``exists``, the same answer."""
    if _O_PATH is not None:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return None  # missing, a dangling symlink, a loop, a file used as a directory, no permission
        try:
            resolved = os.readlink(_PROC_FD + str(fd))
        except OSError:
            resolved = ""
        finally:
            os.close(fd)
        if resolved.startswith("/") and not resolved.endswith(" (deleted)"):
            return resolved
    candidate = os.path.realpath(path)
    return candidate if os.path.exists(candidate) else None


def confine(root: Path, path: RequestPath) -> Path | None:
    """The real path of ``path`` under ``root`` when it exists and stays inside ``root`` (symlinks resolved)."""
    real_root = real_path(str(root))
    if real_root is None:
        return None
    candidate = real_path(os.path.join(real_root, *path.names))
    if candidate is None:
        return None
    if candidate != real_root and os.path.commonpath((real_root, candidate)) != real_root:
        return None
    return Path(candidate)
