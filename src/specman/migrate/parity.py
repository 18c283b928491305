"""The parity proof: the new endpoint serves exactly what the old SCAR serves.

The source is read again (``Source.digests``), every one of its files is fetched from specman's merged view — the
URLs the clusters will use once the switch is made — and hashed; the version of the migrated tag is listed to find
files specman has that the source does not.  Any missing, different or extra file is a difference, and a
difference stops the migration before the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from specman.migrate.crawl import HttpTree

__all__ = ["ParityReport", "prove_parity"]


@dataclass(frozen=True)
class ParityReport:
    files: int
    bytes: int
    missing: list[str] = field(default_factory=list)  # in the source, not served
    different: list[str] = field(default_factory=list)  # served with other bytes
    extra: list[str] = field(default_factory=list)  # in the pushed version, not in the source

    @property
    def ok(self) -> bool:
        return not (self.missing or self.different or self.extra)

    def summary(self) -> str:
        if self.ok:
            return f"{self.files} files, {self.bytes} bytes: identical"
        parts = []
        for name, paths in (("missing", self.missing), ("different", self.different), ("extra", self.extra)):
            if paths:
                shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
                parts.append(f"{len(paths)} {name} ({shown})")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "bytes": self.bytes,
            "missing": self.missing,
            "different": self.different,
            "extra": self.extra,
        }


def prove_parity(
    expected: dict[str, str],
    served: HttpTree,
    version: HttpTree,
    *,
    progress: Callable[[int], None] | None = None,
) -> ParityReport:
    """Compare ``expected`` (path → sha256 of the source now) with what ``served`` answers for each path, and the
    listing of ``version`` (the pushed tag alone) with the source's paths."""
    found = served.fetch_all(expected, progress=progress)
    missing = [path for path, state in found.items() if state is None]
    different = [path for path, state in found.items() if state is not None and state.sha256 != expected[path]]
    extra = [path for path in version.walk() if path not in expected]
    size = sum(state.size for state in found.values() if state is not None)
    return ParityReport(len(expected), size, missing, different, extra)
