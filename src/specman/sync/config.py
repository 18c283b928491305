"""``SyncConfig``: what one reconcile is told to do, as one frozen object (built by the CLI's ``SyncSettings``).

A new sync option is a field here (and its declaration in ``specman.cli.sync.SyncSettings``); the reconcile
steps read it from ``SyncState.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specman.archive import ExtractLimits
from specman.sync.filters import TagFilter

__all__ = ["SyncConfig"]


@dataclass(frozen=True)
class SyncConfig:
    """Which tags, how much an archive may hold, whether deleted tags stay, how many versions at once."""

    tag_filter: TagFilter = field(default_factory=TagFilter)
    limits: ExtractLimits = field(default_factory=ExtractLimits)
    keep_deleted: bool = False
    parallel: int = 2

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ValueError("parallel must be at least 1")
