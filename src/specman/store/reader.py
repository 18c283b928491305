"""``StoreReader``: the read side of the data directory — what is published, as serving processes see it.

Readers never take the lock and never write: they follow ``current`` (one ``readlink`` per lookup; the generation
record is read again only when the link moved), so a generation published by the writer in another process is
visible at once and a request never mixes two generations.  Version trees are found from the generation's records,
never by rebuilding paths elsewhere.  Thread-safe: the server's threads share one reader.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from specman.store._fs import DirLock
from specman.store._state import Generation, TagState, Version, read_generation, read_version, version_id
from specman.store.layout import CURRENT, LOCK, current_number

__all__ = ["StoreReader"]


class StoreReader:
    """The published view of ``data_dir``: the current generation, its version trees, the store's status."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.versions_dir = self.data_dir / "versions"
        self.generations_dir = self.data_dir / "generations"
        self._link_path = os.path.join(self.data_dir, CURRENT)
        self._lock = threading.Lock()
        self._link: str | None = None
        self._generation: Generation | None = None

    def drop_inherited_lock(self) -> None:
        """In a process forked from the writer (a server worker): close the inherited descriptor of the data
        dir's lock, so that the lock dies with its owner even if this process lives on."""
        DirLock.drop_inherited(self.data_dir / LOCK)

    def current(self) -> Generation | None:
        """The published generation (its ``tree`` is the merged view), or None before the first publish."""
        try:
            link: str | None = os.readlink(self._link_path)
        except OSError:
            link = None
        with self._lock:
            if link != self._link or (link is not None and self._generation is None):
                number = current_number(self.data_dir)
                self._generation = None if number is None else read_generation(self.generations_dir / str(number))
                self._link = link
            return self._generation

    def version(self, tag: str, digest: str) -> Version | None:
        """The complete version of ``tag`` at ``digest``, or None."""
        return read_version(self.versions_dir / version_id(tag, digest))

    def version_tree(self, state: TagState) -> Path:
        """The tree of one published tag alone (``/_specman/versions/<tag>/``)."""
        return self.versions_dir / state.version / "tree"

    def per_version_tree(self, tag: str) -> Path | None:
        """The tree of ``tag`` alone as published in the current generation, or None."""
        generation = self.current()
        state = generation.tags.get(tag) if generation else None
        if state is None:
            return None
        tree = self.version_tree(state)
        return tree if tree.is_dir() else None

    def status(self) -> dict[str, Any]:
        """The store's part of ``/_specman/status``."""
        generation = self.current()
        if generation is None:
            return {"generation": None, "created": None, "tags": {}, "files": 0, "conflicts": 0}
        return {
            "generation": generation.number,
            "created": generation.created,
            "tags": generation.digests(),
            "files": generation.files,
            "conflicts": len(generation.conflicts),
        }
