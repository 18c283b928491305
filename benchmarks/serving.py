"""Helpers of ``benchmarks/serve.py``: nginx as the reference server, wrk, /proc memory, registry access logs, load.

* :class:`Nginx` runs nginx with a minimal config of its own (2 workers, ``sendfile on``, one plain and one TLS
  listener on 127.0.0.1, ``root`` the published tree) in the foreground as a child of the benchmark.
* :func:`run_wrk` runs ``wrk`` through :func:`procs.run` with a Lua ``done`` hook that prints the exact totals
  (requests, bytes, duration, every error counter) as one JSON line.
* :class:`MemoryPeaks` samples ``VmHWM``/``VmRSS`` (``/proc/PID/status``) and ``Pss`` (``smaps_rollup``) of a
  process and all its descendants.
* :func:`registry_requests` counts the requests of a client in a ``docker-registry`` access log from an offset.
* :func:`machine_load` says how busy the machine is (load average and the CPU busy share over one second).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procs import MiB, run

__all__ = [
    "CpuShare",
    "MemoryPeaks",
    "Nginx",
    "WrkResult",
    "machine_load",
    "registry_requests",
    "run_wrk",
    "wait_port",
]

_WRK_DONE = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "bytes": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d, "latency_p50_us": %d, "latency_p99_us": %d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


@dataclass(frozen=True)
class WrkResult:
    """Totals of one wrk run; ``errors`` has wrk's socket error counters and ``status`` (responses >= 400)."""

    requests: int
    nbytes: int
    seconds: float
    errors: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.seconds

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def describe_errors(self) -> str:
        bad = {k: v for k, v in self.errors.items() if v}
        return "none" if not bad else ", ".join(f"{k} {v}" for k, v in bad.items())


def run_wrk(
    url: str,
    *,
    work: Path,
    threads: int,
    connections: int,
    seconds: int,
    request_timeout: int,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    """``wrk -tT -cC -dSs --timeout Xs URL`` (wrk reports responses >= 400 as ``status`` errors)."""
    script = work / "wrk-done.lua"
    if not script.exists():
        script.write_text(_WRK_DONE)
    out, err = work / "wrk.out", work / "wrk.err"
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", f"{request_timeout}s"]
    run([[*argv, "-s", str(script), url]], log=err, stdout=out, env=env, timeout=seconds + request_timeout + 60)
    line = next((ln for ln in reversed(out.read_text().splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary for {url}:\n{out.read_text()[-1000:]}")
    data = json.loads(line)
    return WrkResult(
        requests=int(data["requests"]),
        nbytes=int(data["bytes"]),
        seconds=int(data["duration_us"]) / 1e6,
        errors={k: int(data[k]) for k in ERROR_KINDS},
        latency_p50_ms=int(data["latency_p50_us"]) / 1000,
        latency_p99_ms=int(data["latency_p99_us"]) / 1000,
    )


def wait_port(port: int, timeout: float, alive: subprocess.Popen[bytes] | None = None) -> None:
    """Until 127.0.0.1:``port`` accepts a connection; RuntimeError after ``timeout`` or when ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the process listening on {port} exited with {alive.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Nginx:
    """nginx serving ``root`` on 127.0.0.1 over plain HTTP (``http_port``) and TLS (``https_port``)."""

    prefix: Path
    root: Path
    cert: Path
    key: Path
    workers: int = 2
    http_port: int = 0
    https_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def config(self) -> str:
        p = self.prefix
        user = "user root;\n" if os.geteuid() == 0 else ""  # the data dir belongs to root: read it as root
        temp = "".join(
            f"    {kind}_temp_path {p / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"{user}worker_processes {self.workers};\n"
            "daemon off;\n"
            f"pid {p / 'nginx.pid'};\n"
            f"error_log {p / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            "    sendfile on;\n"
            "    tcp_nopush on;\n"
            "    default_type application/octet-stream;\n"
            f"{temp}"
            f"    server {{ listen 127.0.0.1:{self.http_port}; root {self.root}; }}\n"
            f"    server {{\n        listen 127.0.0.1:{self.https_port} ssl;\n        root {self.root};\n"
            f"        ssl_certificate {self.cert};\n        ssl_certificate_key {self.key};\n    }}\n"
            "}\n"
        )

    def start(self, timeout: float = 15.0) -> Nginx:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.http_port, self.https_port = _free_port(), _free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config())
        with (self.prefix / "stderr.log").open("wb") as err:
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        try:
            wait_port(self.http_port, timeout, self.proc)
            wait_port(self.https_port, timeout, self.proc)
        except RuntimeError as exc:
            self.stop()
            tail = "".join(
                (self.prefix / name).read_text(errors="replace")[-800:]
                for name in ("stderr.log", "error.log")
                if (self.prefix / name).exists()
            )
            raise RuntimeError(f"nginx did not start: {exc}\n{tail}") from None
        return self

    def url(self, path: str, tls: bool) -> str:
        return f"https://127.0.0.1:{self.https_port}{path}" if tls else f"http://127.0.0.1:{self.http_port}{path}"

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # fast shutdown of the master and its workers
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _status_kib(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) in KiB, or None when the process is gone."""
    hwm = rss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return hwm, rss


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class MemoryPeaks:
    """Peaks of a process tree, sampled: the main process's VmHWM, the largest sums of RSS and PSS at one instant,
    and the sum of every process's own VmHWM (an upper bound: the peaks need not coincide)."""

    pid: int
    samples: int = 0
    main_hwm_kib: int = 0
    sum_rss_kib: int = 0
    sum_pss_kib: int = 0
    hwm_by_pid: dict[int, int] = field(default_factory=dict)
    most_processes: int = 0

    def sample(self) -> None:
        tree = _children()
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(tree.get(pid, []))
        rss = pss = alive = 0
        for pid in pids:
            found = _status_kib(pid)
            if found is None or found[0] == 0:  # gone, or a zombie
                continue
            alive += 1
            self.hwm_by_pid[pid] = max(self.hwm_by_pid.get(pid, 0), found[0])
            if pid == self.pid:
                self.main_hwm_kib = max(self.main_hwm_kib, found[0])
            rss += found[1]
            pss += _pss_kib(pid)
        self.samples += 1
        self.sum_rss_kib = max(self.sum_rss_kib, rss)
        self.sum_pss_kib = max(self.sum_pss_kib, pss)
        self.most_processes = max(self.most_processes, alive)

    @property
    def main_mib(self) -> float:
        return self.main_hwm_kib / 1024

    @property
    def sum_rss_mib(self) -> float:
        return self.sum_rss_kib / 1024

    @property
    def sum_pss_mib(self) -> float:
        return self.sum_pss_kib / 1024

    @property
    def sum_hwm_mib(self) -> float:
        return sum(self.hwm_by_pid.values()) / 1024


_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ "[^"]*" "(?P<agent>[^"]*)"')


def registry_requests(log_file: Path, offset: int, name: str, agent_prefix: str = "specman/") -> Counter[str]:
    """Requests of the client ``agent_prefix`` for repository ``name`` in a docker-registry access log from
    ``offset``: keys ``"GET manifests"``, ``"HEAD manifests"``, ``"tags/list"``, ``"blobs"``, ``"other"``, ``"all"``."""
    counts: Counter[str] = Counter()
    with log_file.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    for m in _ACCESS.finditer(text):
        if not m["agent"].startswith(agent_prefix):
            continue
        path = m["path"].split("?", 1)[0]
        counts["all"] += 1
        if path.startswith(f"/v2/{name}/manifests/"):
            counts[f"{m['method']} manifests"] += 1
        elif path == f"/v2/{name}/tags/list":
            counts["tags/list"] += 1
        elif path.startswith(f"/v2/{name}/blobs/"):
            counts["blobs"] += 1
        else:
            counts["other"] += 1
    return counts


def _cpu_times() -> tuple[int, int]:
    """(all, idle) jiffies of all CPUs: user nice system idle iowait irq softirq (steal, guest left out)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:7]), idle


def machine_load(window: float = 1.0) -> str:
    """``load average 0.12 0.30 0.25, CPU 3% busy over 1 s`` (all CPUs, everyone's processes)."""
    total0, idle0 = _cpu_times()
    time.sleep(window)
    total1, idle1 = _cpu_times()
    busy = 100 * (1 - (idle1 - idle0) / max(1, total1 - total0))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"load average {load}, CPUs {busy:.0f}% busy over {window:.0f} s"


def _pid_cpu_s(pid: int) -> float:
    """CPU seconds of a live process and of the children it reaped (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s(live: Sequence[int]) -> float:
    """CPU seconds of this process, its reaped children (with theirs) and the ``live`` processes it started."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + sum(_pid_cpu_s(pid) for pid in live)


@dataclass
class CpuShare:
    """How busy the CPUs were between ``start()`` and ``stop()``, and how much of it was not this benchmark:
    busy time from /proc/stat minus the CPU time of this process, its reaped descendants and ``live`` (processes
    it started that are still running, e.g. a registry)."""

    live: Callable[[], Sequence[int]] = list
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    _start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    busy: float = 0.0  # share of all CPUs' time, 0..1
    others: float = 0.0  # share of all CPUs' time used by processes the benchmark did not start

    def start(self) -> CpuShare:
        self._start = (time.monotonic(), _busy_s(), _own_cpu_s(self.live()))
        return self

    def stop(self) -> CpuShare:
        wall, busy = time.monotonic() - self._start[0], _busy_s() - self._start[1]
        own = _own_cpu_s(self.live()) - self._start[2]
        capacity = max(wall * self.cpus, 1e-9)
        self.busy = min(1.0, busy / capacity)
        self.others = min(1.0, max(0.0, (busy - own) / capacity))
        return self

    def describe(self) -> str:
        mine = max(0.0, self.busy - self.others)
        return f"CPUs {self.busy:.0%} busy ({mine:.0%} the benchmark, {self.others:.0%} other processes)"


def _busy_s() -> float:
    total, idle = _cpu_times()
    return (total - idle) / os.sysconf("SC_CLK_TCK")
