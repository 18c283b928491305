"""Cases 3 and 4 — corrupted content in the registry's storage, and hostile archives, synced for real.

Each round starts from a data dir serving version A, pushes every bad case as a tag of its own (``2.0.N``, so a
published one would override A's paths) into a ``docker-registry`` and runs ``specman sync --once`` (exit 1).
Held, per tag: one ``Failed to sync <tag>`` error line naming the cause; the view is still exactly A (no byte of
the bad tag published, no half tree); no staging leftovers; nothing outside the data dir touched (a sentinel
tree next to it is unchanged, the absolute paths the archives aim at do not exist).  The setuid case is the
one accepted: published with its setuid/setgid bits stripped.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import uuid
from pathlib import Path

import pytest

from tests.fixtures.archives import snapshot
from tests.fixtures.registry import Registry
from tests.reliability._bad_content import CORRUPTIONS, HOSTILE, Maker, Push
from tests.reliability.conftest import Results, Scale, scales
from tests.test_serve_process import _assert_clean, _files, _paths, _push, _read_tree, _source, _sync_once


def _round(registry: Registry, makers: dict[str, Maker], work: Path, rng: random.Random, how: str) -> dict[str, str]:
    """One round: A synced, every maker's tag pushed, one sync; case name -> "" (held) or why not."""
    name = f"bad/{uuid.uuid4().hex[:10]}"
    files_a = _files("A", _paths("d", 30))
    _push(registry, name, "1.0.0", files_a, work)
    data = work / "data"
    assert _sync_once(_source(registry, name), data).returncode == 0
    sentinel = work / "sentinel"
    (sentinel / "keep").mkdir(parents=True)
    (sentinel / "keep" / "file.txt").write_text("untouched")
    before = snapshot(sentinel)
    pwned = Path("/tmp") / f"specman-pwned-{uuid.uuid4().hex[:8]}"
    expected: dict[str, tuple[str, tuple[str, ...] | None]] = {}
    for number, (case, make) in enumerate(makers.items()):
        tag = f"2.0.{number}"
        expected[case] = (tag, make(Push(registry, name, tag, rng, pwned, how)))
    proc = _sync_once([*_source(registry, name), "--max-size", "64MiB", "--max-files", "5000"], data)
    errors = [line for line in proc.stderr.splitlines() if "level=error" in line]
    tree = _read_tree(data / "current" / "tree")
    common: list[str] = []
    if proc.returncode != 1:
        common.append(f"sync exit {proc.returncode}")
    if "Traceback" in proc.stderr:
        common.append("a traceback")
    try:
        _assert_clean(data)
    except AssertionError as exc:
        common.append(f"leftovers: {exc}")
    if snapshot(sentinel) != before or pwned.exists():
        common.append("something outside the data dir was touched")
    accepted = {p for p in tree if p not in files_a}
    outcome: dict[str, str] = {}
    for case, (tag, words) in expected.items():
        why = list(common)
        lines = [line for line in errors if f'msg="Failed to sync {tag}"' in line]
        if words is None:  # neutralised: published, without the dangerous bits
            published = sorted(p for p in accepted if p.startswith("suid"))
            modes = [stat.S_IMODE(os.lstat(data / "current" / "tree" / p).st_mode) for p in published]
            if lines or not published or any(m & 0o7022 for m in modes):
                why.append(f"not neutralised: {lines[:1]} {published} {[oct(m) for m in modes]}")
        elif len(lines) != 1 or not any(w.lower() in lines[0].lower() for w in words):
            why.append(f"error line {lines[:2]!r} (wanted one of {words})")
        outcome[case] = "; ".join(why)
    if {p: d for p, d in tree.items() if p in files_a} != files_a or accepted - {"suid.sh"}:
        for case in outcome:
            outcome[case] = (outcome[case] + "; the view is not A").lstrip("; ")
    shutil.rmtree(data, ignore_errors=True)
    return outcome


def _run(
    case: str, makers: dict[str, Maker], registry: Registry, tmp_path: Path, results: Results, rounds: list[str]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    result = results(case, "long" if len(rounds) > 1 else "short")
    held: dict[str, int] = dict.fromkeys(makers, 0)
    for number, how in enumerate(rounds):
        work = tmp_path / f"round-{number}"
        work.mkdir()
        for name, why in _round(registry, makers, work, rng, how).items():
            result.trial(not why, f"seed {seed} {how} {name}: {why}"[:400])
            held[name] += not why
    result.figures = {
        "kinds": len(makers),
        "rounds": f"{len(rounds)} ({', '.join(sorted(set(rounds)))})",
        "rejected": "all but the setuid file, whose bits were stripped"
        if "setuid file (neutralised)" in makers
        else "all",
    }
    result.check()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 10)))
def test_corrupted_content(own_registry: Registry, tmp_path: Path, results: Results, scale: Scale) -> None:
    _run("3. corrupted content in the registry", CORRUPTIONS, own_registry, tmp_path, results, ["gz"] * scale.trials)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 3)))
def test_hostile_archives(own_registry: Registry, tmp_path: Path, results: Results, scale: Scale) -> None:
    rounds = ["gz"] if scale.name == "short" else ["gz", "zst", "tar"] * scale.trials
    _run("4. hostile archives", HOSTILE, own_registry, tmp_path, results, rounds)
