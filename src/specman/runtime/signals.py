"""Stop signals, handled one way for every specman process.

``stop_on_signals`` turns SIGTERM/SIGINT into a ``threading.Event`` while a block runs (the sync loop of
``specman sync``, and a service's start-up until granian takes the signals over).  ``hand_over`` re-sends a
signal caught during start-up until granian's own handler has it, so a signal is never lost between the two.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from specman.oci.http import stop_retrying

__all__ = ["hand_over", "stop_on_signals"]


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (previous handlers restored afterwards)."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop_retrying()  # a reconcile in progress ends at its next failure, not after its back-offs
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def hand_over(stop: threading.Event, served: threading.Event) -> None:
    """A signal our handler caught while granian was starting: send it again until granian's handler takes it
    (``served`` is set once granian has returned)."""
    stop.wait()
    while not served.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
        served.wait(0.5)
