"""Case 9 — disk full: the data dir on a size-limited tmpfs (mounted by the test; skipped without the rights).

Each trial mounts a tmpfs just big enough for version A plus a random part of what syncing B needs — in bytes
(``size=``) or in inodes (``nr_inodes=``), so the sync runs out at different steps (extracting, recording,
merging the generation) — and starts ``serve`` there.  Held when: the sync fails with "disk full" and no
traceback, the old view A stays served and ready, no leftovers remain, and once the filesystem is grown
(``mount -o remount``) the next sync publishes B.  Tag by tag: 1.0.0 keeps version A while its new version does
not fit; 2.0.0, new, may be added when it fits (and 1.0.0 may move to its new version while 2.0.0 does not fit).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixtures.registry import Registry
from tests.fixtures.serve import start_serve
from tests.reliability._common import Reader
from tests.reliability.conftest import Results, Scale, scales
from tests.test_serve_process import (
    View,
    _assert_clean,
    _check_served_view,
    _copy_data,
    _files,
    _paths,
    _push,
    _read_tree,
    _source,
    _status,
    _sync_once,
    _unreachable,
)

WAIT = 120.0


def _mount(point: Path, options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True, check=False
    )


@contextmanager
def _tmpfs(point: Path, options: str) -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    proc = _mount(point, options)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def _used(point: Path) -> tuple[int, int]:
    st = os.statvfs(point)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree


def _trial(
    source: list[str], data: Path, point: Path, views: list[View], rng: random.Random, steps: dict[str, int]
) -> str:
    """One full disk: "" when it held, else why not.  ``views`` are A, A+2.0.0, B1 (1.0.0 moved alone), B."""
    a, b = views[0], views[-1]
    server = start_serve(source, data, extra_args=["--interval", "1s"])
    try:
        if not server.wait_log("disk full", timeout=WAIT):
            return "no 'disk full' in the log"
        line = next((ln for ln in server.log_text().splitlines() if "disk full" in ln), "")
        step = line.split("disk full while ", 1)[-1].split(" (")[0].split(":")[0].split('"')[0]
        step = re.sub(r"(generation|version) \S+", r"\1", step)
        steps[step] = steps.get(step, 0) + 1
        # while its sync keeps failing, the server stays ready and serves 1.0.0 whole (A, or B1 if it fitted)
        with Reader.of_views(server, [a.files, views[2].files]) as reader:
            time.sleep(2.0)
        with server.client() as client:
            ready = client.get("/_specman/readyz").status_code
        if reader.bad or not reader.requests or ready != 200:
            return f"while failing: readyz {ready}, {len(reader.bad)} bad of {reader.requests}: {reader.bad[:2]}"
    finally:
        server.kill9()
    if "Traceback" in server.log_text():
        return "a traceback in the log"
    # what the failing syncs left, checked on a server nobody syncs: clean, and each tag one complete version
    checker = start_serve(_unreachable(), data, extra_args=["--interval", "1h"])
    try:
        _assert_clean(data)
        view = _check_served_view(checker, views, rng, sample=40)
    finally:
        checker.kill9()
    if view is b:
        return "B was published although the disk was full"
    grow = subprocess.run(
        ["mount", "-o", "remount,size=512m,nr_inodes=100000", str(point)], capture_output=True, text=True, check=False
    )
    assert grow.returncode == 0, grow.stderr
    again = start_serve(source, data, extra_args=["--interval", "1s"])
    try:
        deadline = time.monotonic() + WAIT
        while _status(again)["tags"] != b.tags and time.monotonic() < deadline:
            time.sleep(0.2)
        if _status(again)["tags"] != b.tags or _read_tree(data / "current" / "tree") != b.files:
            return "no recovery to B after growing the filesystem"
    finally:
        again.kill9()
    return ""


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scale", scales(Scale("short", 2), Scale("long", 12)))
def test_disk_full(plain_registry: Registry, tmp_path: Path, results: Results, scale: Scale) -> None:
    result = results("9. disk full (tmpfs size / inode limit)", scale.name)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    name = f"disk-full/{uuid.uuid4().hex[:10]}"
    base = _paths("d", 100)
    files_a = _files("A", base)
    digest_a = _push(plain_registry, name, "1.0.0", files_a, tmp_path)
    source = _source(plain_registry, name)
    data_a = tmp_path / "data-a"
    assert _sync_once(source, data_a).returncode == 0
    files_b1 = {**_files("B1", base), **{f"big/{i}.bin": os.urandom(512 << 10) for i in range(8)}}
    files_b2 = _files("B2", _paths("many", 400))
    digest_b1 = _push(plain_registry, name, "1.0.0", files_b1, tmp_path)
    digest_b2 = _push(plain_registry, name, "2.0.0", files_b2, tmp_path)
    a = View("A", files_a, {"1.0.0": digest_a}, {"1.0.0": files_a})
    # tag by tag: 2.0.0 may be added while 1.0.0's new version does not fit, or 1.0.0 move while 2.0.0 does not
    # fit; each tag is always one complete version
    b1 = View("B1", files_b1, {"1.0.0": digest_b1}, {"1.0.0": files_b1})
    a2 = View(
        "A+2.0.0",
        {**files_a, **files_b2},
        {"1.0.0": digest_a, "2.0.0": digest_b2},
        {"1.0.0": files_a, "2.0.0": files_b2},
    )
    b = View(
        "B", {**files_b1, **files_b2}, {"1.0.0": digest_b1, "2.0.0": digest_b2}, {"1.0.0": files_b1, "2.0.0": files_b2}
    )
    # what A takes on a tmpfs, and what syncing B adds (bytes, inodes)
    with _tmpfs(tmp_path / "measure", "size=512m") as roomy:
        _copy_data(data_a, roomy / "data")
        used_a = _used(roomy)
        assert _sync_once(source, roomy / "data").returncode == 0
        used_b = _used(roomy)
    extra = (used_b[0] - used_a[0], used_b[1] - used_a[1])
    steps: dict[str, int] = {}
    for number in range(scale.trials):
        by_inodes = number % 2 == 1
        fraction = rng.uniform(0.05, 0.9)
        if by_inodes:
            options = f"size=512m,nr_inodes={used_a[1] + 1 + int(fraction * extra[1])}"
        else:
            options = f"size={(used_a[0] + int(fraction * extra[0])) // 1024 + 64}k"
        with _tmpfs(tmp_path / f"disk-{number}", options) as point:
            try:
                why = _trial(source, _copy_data(data_a, point / "data"), point, [a, a2, b1, b], rng, steps)
            except AssertionError as exc:
                why = str(exc)[:300]
        result.trial(not why, f"seed {seed} {options}: {why}")
    result.figures = {
        "limits": "bytes and inodes, alternately",
        "B needs": f"{extra[0] >> 20} MiB, {extra[1]} inodes",
        "failed while": ", ".join(f"{k} {v}" for k, v in sorted(steps.items())),
    }
    result.check()
