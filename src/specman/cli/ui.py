"""Terminal output for the CLI: progress bars on a terminal (quiet otherwise) and one-line messages.

Results a script may want (a digest, a tag list) go to stdout; progress, status and errors go to stderr.
Progress bars (rich) are shown only when stderr is a terminal and ``--quiet`` was not given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["UI"]


class UI:
    def __init__(self, *, quiet: bool = False, progress: bool | None = None) -> None:
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.show_progress = (not quiet) and (sys.stderr.isatty() if progress is None else progress)

    def status(self, message: str) -> None:
        """A status line on stderr (suppressed by --quiet)."""
        if not self.quiet:
            self.err.print(message, markup=False)

    def result(self, message: str) -> None:
        """A result line on stdout (always printed: scripts read it)."""
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    @contextmanager
    def progress(self) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
        """Yields ``start(label, total) -> advance(n)``; bars render only on a terminal."""
        if not self.show_progress:
            yield lambda _label, _total: lambda _n: None
            return
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        )

        def start(label: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total)

            def advance(n: int) -> None:
                bar.update(task, advance=n)

            return advance

        with bar:
            yield start
