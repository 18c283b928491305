"""How ``migrate`` reports progress: a small protocol the command line implements (``specman.cli.ui.UI``).

The migration library never imports the CLI or the terminal UI: it says what happens through a ``Reporter``,
and the CLI decides how that looks (status lines on stderr, progress bars on a terminal, nothing with ``--quiet``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["Advance", "Reporter", "StartProgress"]

Advance = Callable[[int], None]
StartProgress = Callable[[str, int], Advance]  # start(label, total) -> advance(n)


class Reporter(Protocol):
    def status(self, message: str) -> None:
        """One line about what happens now."""

    def progress(self) -> AbstractContextManager[StartProgress]:
        """A context in which transfers report their progress through ``start(label, total)``."""
