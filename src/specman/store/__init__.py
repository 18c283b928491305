"""The data directory: immutable versions, merged generations, the atomic ``current`` swap, recovery and GC.

This package owns everything below ``--data-dir`` except ``tls/`` (the server's certificates).  It does not
fetch, verify or extract (``specman.oci``, ``specman.archive``: ``Store.add_version`` hands the caller an
empty directory to fill, typically with ``archive.extract_into``) and does not serve (``specman.server`` reads
``current`` through ``load_current`` or ``Store.current``).

Layout::

    <data-dir>/
      lock                              flock held by the one specman writing here; holds its pid
      versions/<tag>@<alg>-<hex>/       one tag at one digest, immutable once renamed here
        tree/                           the extracted content (served under /_specman/versions/<tag>/)
        version.json                    tag, digest, id, files, bytes, created -- written before the rename
      generations/<n>/                  one merged view, n = 1, 2, ... never reused while current exists
        tree/                           all tags layered: hard links to version files, symlinks, directories
        generation.json                 number, created, tags -> {digest, version, files, bytes},
                                        files/dirs/symlinks of the tree, conflicts [{path, winner, loser, kind}]
      current -> generations/<n>        relative symlink, replaced atomically (current.tmp-<rand> + rename)
      staging/                          work in progress (version-*, generation-*, trash-*); emptied on open

Crash safety: every version and generation is built under ``staging/`` and renamed into place only when its
record is written (after ``syncfs`` when ``durable``), and ``current`` moves with one ``rename`` of a new
symlink, so after ``kill -9`` at any instant ``current`` names a complete generation.  ``Store.open`` removes
the rest: ``staging/*``, ``current.tmp-*``, generations without a record or newer than ``current``, versions
without a valid record -- never the current generation or the versions it names.  Removal renames a tree into
``staging/`` first, so an interrupted removal is finished by the next ``open``.

Writer and readers: ``Store`` (``store.py``) is the one writer, used by the sync loop under the lock;
``StoreReader`` (``reader.py``) is the read side the server uses in any number of processes, without the lock.

Layering order (``version_key``): semver tags ascending, then the other tags by name; a later version wins a
path conflict.  See ``_order`` and ``_merge`` for the rules.
"""

from __future__ import annotations

from specman.store._merge import Conflict
from specman.store._order import ordered_tags, version_key
from specman.store._state import Generation, TagState, Version, version_id
from specman.store.layout import load_current
from specman.store.reader import StoreReader
from specman.store.store import GcResult, Store

__all__ = [
    "Conflict",
    "GcResult",
    "Generation",
    "Store",
    "StoreReader",
    "TagState",
    "Version",
    "load_current",
    "ordered_tags",
    "version_id",
    "version_key",
]
