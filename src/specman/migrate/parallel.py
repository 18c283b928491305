"""Fetching a large tree from more than one process: one Python process is bound by one core.

Copying 10,000 files into the mirror keeps ``migrate``'s process at one full core: the HTTP client's per-request
work (aiohttp, 0.3 ms a file) plus the file system's (creating, writing and renaming each file: 0.25 ms a file
measured, more while the kernel writes back earlier data) — threads would only contend for the GIL, and moving the
file work to threads measured slower.  ``fetch_all`` hands part of the paths to helper processes (``spawn``-ed,
so nothing of this multi-threaded process is forked), each with its own ``HttpTree`` of the same ``Site``, in
chunks so that progress moves and a failure stops the rest.  It pays on machines with spare cores: on 2 CPUs
``--processes 2`` measured no faster than one process (the server side bounds the proof), hence the default 1.
Small trees (fewer than ``MIN_SPLIT`` files) stay in this process: starting a helper costs about half a second.
The helpers report their own peak memory, which ``helper_peak_rss`` keeps for the summary.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Final

from specman.errors import SpecmanError
from specman.migrate.crawl import FileState, HttpTree, Site

__all__ = ["MIN_SPLIT", "fetch_all", "helper_peak_rss"]

MIN_SPLIT: Final = 2000
CHUNK: Final = 250
Result = dict[str, FileState | None]

_child_tree: HttpTree | None = None
_peak_rss_kib = 0


def helper_peak_rss() -> int:
    """The largest peak RSS (bytes) a helper process reported so far (0 without helpers)."""
    return _peak_rss_kib * 1024


def _child_init(site: Site) -> None:
    global _child_tree
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the helpers
    _child_tree = HttpTree(site)


def _child_fetch(
    paths: list[str], mirror: Path | None, known: dict[str, FileState] | None
) -> tuple[Result | None, str | None, int]:
    """(results, None, peak RSS KiB), or (None, the error's message, ...): errors travel as text (specman's
    exceptions are not all picklable)."""
    assert _child_tree is not None
    try:
        found = _child_tree.fetch_all(paths, mirror=mirror, known=known)
        return found, None, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (SpecmanError, OSError) as exc:
        return None, str(exc), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fetch_all(
    tree: HttpTree,
    paths: Iterable[str],
    *,
    mirror: Path | None = None,
    progress: Callable[[int], None] | None = None,
    known: dict[str, FileState] | None = None,
    processes: int = 1,
) -> Result:
    """``tree.fetch_all`` over ``processes`` processes (this one included); the same answer, the same errors."""
    global _peak_rss_kib
    ordered = list(paths)
    if processes <= 1 or len(ordered) < MIN_SPLIT:
        return tree.fetch_all(ordered, mirror=mirror, progress=progress, known=known)
    share = len(ordered) * (processes - 1) // processes  # the helpers' part, in chunks; the rest stays here
    theirs, mine = ordered[:share], ordered[share:]
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(processes - 1, mp_context=context, initializer=_child_init, initargs=(tree.site,))
    futures: list[Future[tuple[Result | None, str | None, int]]] = []
    try:
        for start in range(0, len(theirs), CHUNK):
            chunk = theirs[start : start + CHUNK]
            subset = {p: known[p] for p in chunk if p in known} if known else None
            future = executor.submit(_child_fetch, chunk, mirror, subset)
            if progress is not None:
                future.add_done_callback(lambda f: _advance(f, progress))
            futures.append(future)
        found = tree.fetch_all(mine, mirror=mirror, progress=progress, known=known)
        for future in futures:
            try:
                part, error, peak = future.result()
            except BrokenProcessPool as exc:
                raise SpecmanError(f"{tree.name}: a helper process died ({exc})") from None
            _peak_rss_kib = max(_peak_rss_kib, peak)
            if error is not None or part is None:
                raise SpecmanError(error or "a helper process failed")
            found |= part
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return {path: found[path] for path in ordered}


def _advance(future: Future[tuple[Result | None, str | None, int]], progress: Callable[[int], None]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    part = future.result()[0] or {}
    progress(sum(state.size for state in part.values() if state is not None))
