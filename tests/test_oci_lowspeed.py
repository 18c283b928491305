"""``SpeedWindow``, the low-speed rule shared by the registry transport and migrate's tree reader."""

from __future__ import annotations

import time

from specman.oci.lowspeed import SpeedWindow


def test_a_trickle_breaks_the_rule_and_enough_bytes_start_a_new_window() -> None:
    speed = SpeedWindow(limit=1024, window=0.05)
    assert speed.slow(10) is None  # the window has not passed yet
    time.sleep(0.06)
    measured = speed.slow(10)
    assert measured is not None and "20 bytes in" in measured and "less than 1024 bytes/s" in measured

    speed = SpeedWindow(limit=1024, window=0.05)
    time.sleep(0.06)
    assert speed.slow(1 << 20) is None  # fast enough: a new window starts
    assert speed.count == 0
    assert speed.slow(10) is None
