"""Request path → file inside a served tree, immune to traversal tricks.  All checks live here, in one place.

``parse_request_path`` works on the raw (still percent-encoded) path of the request target and decodes it
exactly once:

* encoded ``/`` or ``\\`` (``%2f``, ``%5c``) are refused (400): a name never contains a slash, and proxies
  disagree on how to decode them;
* the decoded bytes must be valid UTF-8 (overlong forms such as ``%c0%ae`` are invalid UTF-8 and refused);
* NUL, other control characters and backslashes are refused (400);
* ``.`` segments and empty segments are dropped; any ``..`` segment is refused (400) — even one that would stay
  inside the tree;
* what remains is a tuple of plain names.  A double-encoded ``%252e%252e`` decodes to the literal name
  ``%2e%2e``: harmless, it names no file.

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

__all__ = ["PathRejected", "RequestPath", "confine", "parse_request_path"]

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_PATH = 4096


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


def parse_request_path(raw: str) -> RequestPath:
    """Decode and check the raw path of a request target (no query string)."""
    if not raw.startswith("/"):
        raise PathRejected("the path must start with /")
    if len(raw) > MAX_PATH:
        raise PathRejected(f"the path is longer than {MAX_PATH} characters", status=414)
    if _ENCODED_SEPARATOR.search(raw):
        raise PathRejected("encoded slashes or backslashes are not allowed in paths")
    if _BAD_PERCENT.search(raw):
        raise PathRejected("malformed percent-encoding")
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise PathRejected("the path is not valid UTF-8") from None
    if _CONTROL.search(decoded):
        raise PathRejected("control characters and backslashes are not allowed in paths")
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
