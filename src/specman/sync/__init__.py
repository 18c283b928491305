"""Sync: keep a data directory (``specman.store``) equal to the tags of a source repository (``specman.oci``).

This package drives the other layers and owns none of their work: it lists and resolves tags through a
``Repository``, streams each new version's layer through ``archive.extract_into`` into ``Store.add_version``
(published only after ``BlobReader.verify()``), publishes the new set of tags with ``Store.publish`` and
collects garbage.  ``reconcile`` is one run, as a list of Flux-style steps; ``loop`` repeats it with backoff;
``filters`` decides which tags are followed.  It does not serve (``specman.server``) and does not touch the
data directory except through ``Store``.

Log lines (logger ``specman.sync``) keep the product documentation's messages, in its order::

    time="..." level=info msg="Syncing with OCI repo"
    time="..." level=info msg="tags[4.5.13 4.5.15 0.0.0]"
    time="..." level=info msg="Downloading 0.0.0"
    time="..." level=info msg="Persisting 0.0.0"

plus specman's own lines with fields (``Stored <tag>`` with digest/files/bytes/duration, ``Removing <tag>``,
``Failed to sync <tag>`` with the cause, one ``Sync finished`` summary per run).
"""

from __future__ import annotations

from specman.sync.config import SyncConfig
from specman.sync.filters import SemverRange, TagFilter
from specman.sync.loop import Backoff, run_loop
from specman.sync.reconcile import STEPS, SyncResult, SyncState, reconcile_once

__all__ = [
    "STEPS",
    "Backoff",
    "SemverRange",
    "SyncConfig",
    "SyncResult",
    "SyncState",
    "TagFilter",
    "reconcile_once",
    "run_loop",
]
