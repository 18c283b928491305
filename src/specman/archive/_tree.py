"""Member names and the model of a tree being built: the safety rules shared by pack and extract.

This module owns the decisions "is this name acceptable" and "does this symlink stay inside the tree", made on
names and on a record of what was created so far (directories and symlinks), never by asking the file
system (``realpath`` per member is the slow part of other extractors).  ``pack.py`` runs the same model over
the tree it writes, so whatever specman packs, specman can extract.

Rules:

* A name is split on ``/``; empty and ``.`` components are dropped (``./a//b/`` is ``a/b``; ``.`` and ``./``
  are the root).  Absolute names, any ``..`` component, NUL and other control characters (0x00-0x1f, 0x7f)
  are refused.  Backslashes are ordinary characters, as on any POSIX file system.
* A member may not be written through a symlink: no ancestor of its path may be a symlink of the tree.
* A symlink target must be relative and must stay inside the tree.  It is resolved from the link's
  directory, following the symlinks created so far; a ``..`` is only accepted where the path so far is a
  directory that already exists.  Directories are never replaced by anything else, so the target keeps
  resolving inside the tree whatever later members create.
"""

from __future__ import annotations

import re
from typing import Final

from specman.errors import LimitExceededError, UnsafeMemberError

__all__ = ["MAX_SYMLINK_HOPS", "TreeModel", "check_link_text", "normalise_name"]

#: Symlinks followed while resolving one target before it counts as a loop (Linux's own limit).
MAX_SYMLINK_HOPS: Final = 40

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def check_link_text(member: str, text: str, what: str) -> None:
    """Refuse NUL/control characters in a name or link target (``what`` says which, for the message)."""
    found = _CONTROL.search(text)
    if found is not None:
        char = "NUL byte" if found.group() == "\x00" else f"control character {found.group()!r}"
        raise UnsafeMemberError(member, f"{what} contains a {char}")


def normalise_name(name: str, *, max_length: int = 4096) -> str:
    """Return the relative, normalised form of a member name (``""`` for the root), or raise.

    ``./a/b.json``, ``a/b.json`` and ``a//b.json/`` all become ``a/b.json``.
    """
    if len(name) > max_length:
        raise LimitExceededError(
            f"archive member name of {len(name)} characters exceeds the limit of {max_length}"
            f" (starts with {name[:60]!r})"
        )
    check_link_text(name, name, "name")
    if name.startswith("/"):
        raise UnsafeMemberError(name, "absolute path")
    parts = [part for part in name.split("/") if part and part != "."]
    if ".." in parts:
        raise UnsafeMemberError(name, "path contains a '..' component")
    return "/".join(parts)


class TreeModel:
    """What one extraction (or packing) has created so far: every directory and every symlink.

    Paths are normalised relative names; the root is ``""``.  Regular files are not recorded (the file
    system is their record), so memory grows with directories and symlinks only.
    """

    def __init__(self) -> None:
        self.dirs: set[str] = {""}
        self.symlinks: dict[str, str] = {}

    def check_parents(self, member: str, path: str) -> None:
        """Refuse ``path`` when one of its ancestors is a symlink (a write through a symlink)."""
        if not self.symlinks:
            return
        end = path.rfind("/")
        while end > 0:
            parent = path[:end]
            if parent in self.symlinks:
                raise UnsafeMemberError(member, f"its parent {parent!r} is a symlink (write through symlink)")
            end = path.rfind("/", 0, end)

    def missing_parents(self, path: str) -> list[str]:
        """The ancestors of ``path`` not yet created, outermost first."""
        missing: list[str] = []
        end = path.rfind("/")
        while end > 0:
            parent = path[:end]
            if parent in self.dirs:
                break
            missing.append(parent)
            end = path.rfind("/", 0, end)
        missing.reverse()
        return missing

    def check_new_path(self, member: str, path: str, kind: str) -> None:
        """Refuse a ``kind`` member ("regular file", "symlink"...) that would replace a directory or symlink."""
        if path == "":
            raise UnsafeMemberError(member, f"a {kind} cannot replace the root directory")
        if path in self.dirs:
            raise UnsafeMemberError(member, f"a {kind} would replace a directory")
        if path in self.symlinks:
            raise UnsafeMemberError(member, f"a {kind} would replace a symlink")

    def check_symlink(self, member: str, path: str, target: str) -> None:
        """Refuse a symlink at ``path`` to ``target`` unless the target stays inside the tree."""
        if not target:
            raise UnsafeMemberError(member, "empty symlink target")
        check_link_text(member, target, "symlink target")
        if target.startswith("/"):
            raise UnsafeMemberError(member, f"absolute symlink target {target!r}")
        directory = path.split("/")[:-1]
        self._resolve(member, target, directory, [0])

    def _resolve(self, member: str, target: str, stack: list[str], hops: list[int]) -> None:
        """Walk ``target`` from the directory ``stack`` (modified in place), refusing any escape."""
        for part in target.split("/"):
            if not part or part == ".":
                continue
            if part == "..":
                if not stack:
                    raise UnsafeMemberError(member, f"symlink target {target!r} leaves the tree")
                current = "/".join(stack)
                if current not in self.dirs:
                    raise UnsafeMemberError(
                        member,
                        f"symlink target {target!r} uses '..' after {current!r},"
                        " which is not a directory created before it",
                    )
                stack.pop()
                continue
            stack.append(part)
            current = "/".join(stack)
            link = self.symlinks.get(current)
            if link is not None:
                hops[0] += 1
                if hops[0] > MAX_SYMLINK_HOPS:
                    raise UnsafeMemberError(member, f"symlink target {target!r}: too many levels of symlinks")
                stack.pop()
                self._resolve(member, link, stack, hops)
