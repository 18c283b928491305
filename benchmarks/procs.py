"""Child processes for the benchmarks: wall time and peak RSS per command, page-cache control.

Every measured command runs as its own child process (or a pipeline of them); for a pipeline the peak RSS is the
maximum over its stages. The peak RSS is ``ru_maxrss`` from ``wait4``, but read by GNU ``time`` (``/usr/bin/time
-f %M``) wrapped around each stage when it is installed: Linux carries the high-water mark of the address space a
child had before ``exec`` (a copy of the parent's) into its ``ru_maxrss``, so ``os.wait4`` straight from this
Python process would report at least this process's own RSS (tens of MiB) for every child. GNU time is a small C
program, so what it reports is off by about 1 MiB at most (see :func:`rss_floor_mib`). Without it, ``os.wait4``
is used directly and the figures are upper bounds. Children still running when the benchmark is interrupted are
killed by :func:`kill_running`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = [
    "CommandFailed",
    "Measurement",
    "PageCache",
    "fresh_dir",
    "interrupt",
    "kill_running",
    "log",
    "remove_stale_runs",
    "resident_bytes",
    "rotate",
    "rss_floor_mib",
    "rss_method",
    "run",
    "specman_command",
]

MiB = 1 << 20
_RUNNING: set[subprocess.Popen[bytes]] = set()


def _gnu_time() -> str | None:
    path = shutil.which("time")
    if path is None:
        return None
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU" in done.stdout + done.stderr else None


GNU_TIME = _gnu_time()


class CommandFailed(RuntimeError):
    """A measured or helper command exited non-zero or timed out (the message has its stderr tail)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    seconds: float
    peak_rss_mib: float  # max over the processes of the command (a pipeline: max of its stages)

    def __add__(self, other: Measurement) -> Measurement:
        """Two commands run one after the other: times add up, peak RSS is the larger one."""
        return Measurement(self.seconds + other.seconds, max(self.peak_rss_mib, other.peak_rss_mib))


def _kill(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGKILL each stage's process group: the GNU time wrapper and the command it runs."""
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)


def kill_running() -> None:
    """Kill and reap every child started by :func:`run` that has not been reaped yet."""
    procs = list(_RUNNING)
    _kill(procs)
    for p in procs:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p.pid, 0)
        p.returncode = -9
        _RUNNING.discard(p)


def log(message: str) -> None:
    """Progress for the person running the benchmark: stderr, flushed."""
    print(message, file=sys.stderr, flush=True)


def _tail(path: Path, limit: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


def run(
    stages: Sequence[Sequence[str]],
    *,
    log: Path,
    stdout: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
) -> Measurement:
    """Run one command (one stage) or a pipeline (stage i's stdout feeds stage i+1's stdin).

    The wall time runs from before the first ``fork`` until the last stage has exited. stderr of all stages
    goes to ``log``, the last stage's stdout to ``stdout`` (or /dev/null).

    Raises:
        CommandFailed: a stage exited non-zero, was killed, or the whole command exceeded ``timeout`` seconds.
    """
    procs: list[subprocess.Popen[bytes]] = []
    timed_out = threading.Event()
    rss_files = [log.with_name(f"{log.name}.rss{i}") for i in range(len(stages))] if GNU_TIME else []

    def on_timeout() -> None:
        timed_out.set()
        _kill(procs)

    timer = threading.Timer(timeout, on_timeout)
    with log.open("wb") as err, (stdout or Path(os.devnull)).open("wb") as out:
        start = time.perf_counter()
        prev = None
        for i, argv in enumerate(stages):
            last = i == len(stages) - 1
            wrap = [GNU_TIME, "-f", "%M", "-o", str(rss_files[i])] if GNU_TIME else []
            p = subprocess.Popen(
                [*wrap, *argv],
                stdin=prev if prev is not None else subprocess.DEVNULL,
                stdout=out if last else subprocess.PIPE,
                stderr=err,
                env=None if env is None else dict(env),
                process_group=0,  # killed as a group (wrapper and command); run.py forwards Ctrl-C as a kill
            )
            _RUNNING.add(p)
            procs.append(p)
            if prev is not None:
                prev.close()  # only the next stage holds the read end now
            prev = p.stdout
        timer.start()
        try:
            peak_kib = 0
            for p in procs:
                _, status, usage = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                _RUNNING.discard(p)
                peak_kib = max(peak_kib, usage.ru_maxrss)
            elapsed = time.perf_counter() - start
        finally:
            timer.cancel()
    failed = [(p.args, p.returncode) for p in procs if p.returncode != 0]
    if timed_out.is_set() or failed:
        what = f"timed out after {timeout:.0f} s" if timed_out.is_set() else f"exit status {failed}"
        cmd = " | ".join(" ".join(s) for s in stages)
        raise CommandFailed(f"{cmd}: {what}\n{_tail(log)}")
    if rss_files:
        peak_kib = max(_read_kib(f) for f in rss_files)
    return Measurement(elapsed, peak_kib / 1024)


def _read_kib(path: Path) -> int:
    """The %M line GNU time wrote (the last line: a note about the exit status may come first)."""
    lines = path.read_text().split()
    path.unlink()
    return int(lines[-1])


def rss_method() -> str:
    if GNU_TIME:
        return f"`ru_maxrss` from `wait4`, read by GNU time (`{GNU_TIME} -f %M`) wrapped around each process"
    return "`ru_maxrss` from `os.wait4` of each child (no GNU time: includes the benchmark runner's own RSS)"


def rss_floor_mib(log: Path) -> float:
    """Peak RSS reported for ``true``: what the measuring method itself adds at least."""
    return run([["true"]], log=log).peak_rss_mib


def resident_bytes(path: Path) -> int | None:
    """Bytes of ``path`` in the page cache (util-linux ``fincore``), or None when it cannot be told."""
    if shutil.which("fincore") is None:
        return None
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(done.stdout.strip())
    except ValueError:
        return None


def _evict(paths: Iterable[Path]) -> None:
    """Ask the kernel to drop the clean cached pages of every regular file under ``paths``."""

    def one(name: str) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    for path in paths:
        if path.is_dir():
            for root, _dirs, files in os.walk(path):
                for f in files:
                    one(os.path.join(root, f))
        elif path.is_file():
            one(str(path))


class PageCache:
    """``sync`` and empty the page cache before a measured run.

    Modes: ``drop`` writes 3 to /proc/sys/vm/drop_caches (root) and falls back to ``evict`` when that is not
    permitted; ``evict`` drops only the pages of the files the run will read (posix_fadvise DONTNEED, no root
    needed); ``keep`` only syncs.
    """

    def __init__(self, mode: str) -> None:
        if mode not in ("drop", "evict", "keep"):
            raise ValueError(f"unknown page-cache mode {mode!r}")
        self.mode = mode
        self.dropped = 0  # global drops done
        self.evicted = 0  # per-file evictions done
        self.drop_error: str | None = None

    def flush(self, inputs: Iterable[Path]) -> None:
        """Write back dirty pages, then drop the cache (or evict ``inputs`` from it)."""
        os.sync()
        if self.mode == "keep":
            return
        if self.mode == "drop" and self.drop_error is None:
            try:
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
            except OSError as exc:
                self.drop_error = f"{type(exc).__name__}: {exc.strerror or exc}"
            else:
                self.dropped += 1
                return
        _evict(inputs)
        self.evicted += 1

    def check(self, storage: Path) -> str:
        """Read the largest file under ``storage``, flush once more and tell (fincore) whether it left the cache."""
        files = sorted((p for p in storage.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
        if not files:
            return ""
        with files[0].open("rb") as f:  # read it into the cache
            while f.read(MiB):
                pass
        before = resident_bytes(files[0])
        self.flush([storage])
        after = resident_bytes(files[0])
        if before is None or after is None:
            return "Whether the cache was emptied could not be checked (no `fincore`)."
        return (
            f"Checked with `fincore` on the largest registry blob: {before / MiB:.0f} MiB cached before a flush, "
            f"{after / MiB:.0f} MiB after."
        )

    def describe(self) -> str:
        """One sentence for the notes: what was done before each measured run."""
        if self.mode == "keep":
            return "The page cache was NOT dropped (`--cache keep`): only `sync` ran before each measured run."
        if self.dropped and not self.evicted:
            return (
                "Before each measured run: `sync`, then `echo 3 > /proc/sys/vm/drop_caches` "
                f"(done {self.dropped} times): every run starts with a cold page cache."
            )
        why = f" (writing /proc/sys/vm/drop_caches was not permitted: {self.drop_error})" if self.drop_error else ""
        return (
            f"The global page cache was NOT dropped{why}. Instead, before each measured run: `sync`, then "
            "`posix_fadvise(DONTNEED)` on every file the run reads (dataset files, the tgz, the registry's blob "
            f"storage), {self.evicted} times, so the inputs come from disk; other cached data stays."
        )


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def rotate(items: list[str], i: int) -> list[str]:
    """The tools in a different order each repetition, so none is always first after a cache drop."""
    k = i % len(items)
    return items[k:] + items[:k]


def specman_command() -> list[str]:
    script = Path(sys.executable).parent / "specman"
    if script.is_file():
        return [str(script)]
    found = shutil.which("specman")
    return [found] if found else [sys.executable, "-m", "specman"]


def interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM/SIGHUP handler: stop a benchmark as Ctrl-C does (its cleanup runs)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def remove_stale_runs(work_dir: Path) -> None:
    """Temporary directories ``run-<pid>`` of earlier benchmark runs that were killed (their pid is gone)."""
    for stale in work_dir.glob("run-*"):
        try:
            os.kill(int(stale.name.removeprefix("run-")), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass
