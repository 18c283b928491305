"""The parity proof: the new endpoint serves exactly what the old SCAR serves.

The source is read again (``Source.digests``) while every one of its files is fetched from specman's merged view — the
URLs the clusters will use once the switch is made — and hashed; the version of the migrated tag is listed to find
files specman has that the source does not.  Every directory holding an ``index.html`` is also fetched as the
directory itself (``dir/``): nginx answers it with that page, and so must specman (``index_pages``).  Any missing,
different or extra file, or a directory not answering with its index page, is a difference, and a difference stops
the migration before the switch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from specman.migrate.crawl import HttpTree
from specman.migrate.parallel import fetch_all

__all__ = ["ParityReport", "index_directories", "prove_parity"]


@dataclass(frozen=True)
class ParityReport:
    files: int
    bytes: int
    missing: list[str] = field(default_factory=list)  # in the source, not served
    different: list[str] = field(default_factory=list)  # served with other bytes
    extra: list[str] = field(default_factory=list)  # in the pushed version, not in the source
    index_pages: list[str] = field(default_factory=list)  # directories not answering with their index.html

    @property
    def ok(self) -> bool:
        return not (self.missing or self.different or self.extra or self.index_pages)

    def summary(self) -> str:
        if self.ok:
            return f"{self.files} files, {self.bytes} bytes: identical"
        parts = []
        kinds = (
            ("missing", self.missing),
            ("different", self.different),
            ("extra", self.extra),
            ("directories not answering with their index.html", self.index_pages),
        )
        for name, paths in kinds:
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
            "indexPages": self.index_pages,
        }


INDEX_PAGE = "index.html"


def index_directories(paths: Iterable[str]) -> list[str]:
    """The directories (``""`` for the root, else ``"a/b/"``) holding an ``index.html`` among ``paths``."""
    return [path[: -len(INDEX_PAGE)] for path in paths if path == INDEX_PAGE or path.endswith("/" + INDEX_PAGE)]


def prove_parity(
    read_source: Callable[[], dict[str, str]],
    paths: Iterable[str],
    served: HttpTree,
    version: HttpTree,
    *,
    progress: Callable[[int], None] | None = None,
    processes: int = 1,
) -> ParityReport:
    """Compare the source as ``read_source`` finds it now (path → sha256) with what ``served`` answers for each of
    its paths, and the listing of ``version`` (the pushed tag alone) with the source's paths.

    The source is read again *while* specman's copies of ``paths`` (the source's files at the first reading) are
    fetched — the two are independent; paths the second reading finds beyond ``paths`` are fetched after it."""
    with ThreadPoolExecutor(2, thread_name_prefix="specman-parity") as pool:
        again = pool.submit(read_source)
        listed = pool.submit(version.walk)
        found = fetch_all(served, paths, progress=progress, processes=processes)
        expected = again.result()
        found = {path: found[path] for path in expected if path in found}
        found |= served.fetch_all([path for path in expected if path not in found], progress=progress)
        extra = [path for path in listed.result() if path not in expected]
        directories = index_directories(expected)
        pages = served.fetch_all(directories) if directories else {}
    wrong_pages = [
        directory or "/"
        for directory, state in pages.items()
        if state is None or state.sha256 != expected[directory + INDEX_PAGE]
    ]
    missing = [path for path, state in found.items() if state is None]
    different = [path for path, state in found.items() if state is not None and state.sha256 != expected[path]]
    size = sum(state.size for state in found.values() if state is not None)
    return ParityReport(len(expected), size, missing, different, extra, wrong_pages)
