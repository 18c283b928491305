"""Building a merged view: several immutable version trees layered into one new tree without copying data.

This module owns the layering rules: versions are applied in the order given (``_order``), a later version
wins a path conflict, and every conflict is recorded.  A plan (path -> kind, source) is made in memory from an
``os.scandir`` walk (the kind comes from the directory entry: no ``stat`` per file), then materialised in one
pass: directories created, regular files hard-linked (``os.link``: no data copied, the inode is shared with the
version tree), symlinks recreated with the same target text.  It writes only below the new tree's root and
never modifies a source tree; where to build and when to publish are ``store.py``'s business.

Conflicts: file over file (``file``); a file or symlink where an earlier version had a directory
(``file-over-directory``: the later version wins and the whole earlier subtree is dropped); a directory where an
earlier version had a file or symlink (``directory-over-file``); an entry named ``_specman`` at a version's root
(``reserved``: ``specman serve`` keeps ``/_specman/`` for itself, so the view leaves it out, whose ``winner`` is
``specman``; push refuses such trees, but a tag pushed by another tool may hold one).  A directory present in
several versions is shared, not a conflict, and neither is a file (or symlink) with the same content in both.
Symlink targets are copied verbatim: each stayed inside its own version tree, but in the merged view a link may
resolve through another version's entries, so the server confines every path it serves by ``realpath`` to the
generation's tree.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from specman.archive import RESERVED_ROOT_NAME
from specman.store._fs import NO_HARD_LINKS, clone_or_copy

__all__ = ["Conflict", "MergeResult", "build_merged_tree"]

_DIR: Final = 0
_FILE: Final = 1
_LINK: Final = 2


@dataclass(frozen=True, slots=True)
class Conflict:
    """``path`` (relative, ``/``-separated) exists in two versions; ``winner``'s entry is in the view."""

    path: str
    winner: str
    loser: str
    kind: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "winner": self.winner, "loser": self.loser, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What the merged tree holds (regular files, directories below the root, symlinks) and the conflicts."""

    files: int
    dirs: int
    symlinks: int
    conflicts: tuple[Conflict, ...]


def _plan(sources: Sequence[tuple[str, str]]) -> tuple[dict[str, tuple[int, int]], list[Conflict]]:
    """Walk each ``(tag, root)`` in order into ``relative path -> (kind, source index)``.

    Dicts keep insertion order and a parent is always inserted before its children, so iterating the plan
    creates every directory before what it contains.
    """
    plan: dict[str, tuple[int, int]] = {}
    conflicts: list[Conflict] = []
    for index, (tag, root) in enumerate(sources):
        pending = [(root, "")]
        while pending:
            directory, prefix = pending.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    rel = prefix + entry.name
                    if rel == RESERVED_ROOT_NAME:
                        conflicts.append(Conflict(rel, "specman", tag, "reserved"))
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        kind = _DIR
                        pending.append((entry.path, rel + "/"))
                    elif entry.is_symlink():
                        kind = _LINK
                    else:
                        kind = _FILE
                    old = plan.get(rel)
                    if old is not None:
                        old_kind, old_index = old
                        if old_kind == _DIR and kind == _DIR:
                            continue  # a directory shared by both versions
                        loser = sources[old_index][0]
                        if old_kind == _DIR:
                            below = rel + "/"
                            for path in [path for path in plan if path.startswith(below)]:
                                del plan[path]
                            conflicts.append(Conflict(rel, tag, loser, "file-over-directory"))
                        elif kind == _DIR:
                            conflicts.append(Conflict(rel, tag, loser, "directory-over-file"))
                        elif not _same(kind, old_kind, f"{sources[old_index][1]}/{rel}", entry.path):
                            conflicts.append(Conflict(rel, tag, loser, "file"))
                    plan[rel] = (kind, index)
    conflicts.sort(key=lambda conflict: conflict.path)
    return plan, conflicts


def _same(kind: int, old_kind: int, old: str, new: str) -> bool:
    """Whether two entries hold the same bytes (or the same link text): then a later version replacing the
    earlier one is no conflict worth reporting.  Sizes first; contents only when the sizes match."""
    if kind != old_kind:
        return False
    if kind == _LINK:
        return os.readlink(old) == os.readlink(new)
    before, after = os.lstat(old), os.lstat(new)
    if (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino):
        return True  # one object of the pool: the same content by construction
    if before.st_size != after.st_size:
        return False
    with open(old, "rb") as a, open(new, "rb") as b:
        while True:
            chunk = a.read(1 << 20)
            if chunk != b.read(1 << 20):
                return False
            if not chunk:
                return True


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EMLINK and exc.errno not in NO_HARD_LINKS:
            raise
        clone_or_copy(source, target)  # too many links to the inode, or no hard links here: a (reflink) copy


def build_merged_tree(sources: Sequence[tuple[str, str]], target: str) -> MergeResult:
    """Layer the trees ``sources`` (``(tag, root)``, first applied first) into the existing empty ``target``.

    Raises ``OSError`` (disk full, too many open files...) with ``target`` partly built: the caller removes it.
    """
    plan, conflicts = _plan(sources)
    roots = [root for _, root in sources]
    files = dirs = symlinks = 0
    mkdir, link, symlink, readlink = os.mkdir, _link, os.symlink, os.readlink
    for rel, (kind, index) in plan.items():
        destination = f"{target}/{rel}"
        if kind == _DIR:
            mkdir(destination, 0o755)
            dirs += 1
        elif kind == _FILE:
            link(f"{roots[index]}/{rel}", destination)
            files += 1
        else:
            symlink(readlink(f"{roots[index]}/{rel}"), destination)
            symlinks += 1
    return MergeResult(files, dirs, symlinks, tuple(conflicts))
