"""Running specman's HTTP services (``serve``, ``console``): listen address, TLS material and granian.

``parse_listen`` reads ``--listen``; ``tls_min`` (``--tls-min``) is the lowest TLS version accepted (1.2 by default:
TLS 1.2 with the ECDHE AES-GCM and ChaCha20-Poly1305 suites, the Mozilla "intermediate" choice, and TLS 1.3);
``tls_files`` picks the certificate (``--tls-cert/--tls-key``, or a private CA
and server certificate generated into ``<data-dir>/tls``, or none with ``--no-tls``); ``run_asgi`` starts granian
with ``workers`` processes sharing the port (SO_REUSEPORT), crashed workers respawned, its own log lines in
specman's format (logrus text or JSON), and returns after SIGTERM/SIGINT once in-flight requests are done (at
most 20 s later: then the workers are killed). A renewed certificate is served without a restart: granian
replaces its workers gracefully when the files change (``specman.runtime.certwatch``), or on SIGHUP.

The server stack (granian, cryptography) is imported inside the functions: commands that do not serve start faster.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from specman.errors import UsageError

_KILL_TIMEOUT = 20  # seconds: within Kubernetes' default 30 s grace period

__all__ = ["TLS_VERSIONS", "check_tls", "parse_listen", "run_asgi", "tls_files"]

TLS_VERSIONS = ("1.2", "1.3")


def parse_listen(value: str, *, any_port: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port); UsageError otherwise.  ``any_port``: port 0 is allowed."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not (0 if any_port else 1) <= int(port) < 65536:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:8443")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"--listen {value!r}: {host!r} is not an IPv6 address") from None
    return host, int(port)


def check_tls(no_tls: bool, cert: Path | None, key: Path | None) -> None:
    """UsageError for a bad combination or an unusable certificate pair; writes nothing (call it first)."""
    from specman.runtime.tls import server_context  # cryptography loads only when serving

    if no_tls and (cert or key):
        raise UsageError("--no-tls cannot be combined with --tls-cert/--tls-key")
    if (cert is None) != (key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if cert is not None and key is not None:
        server_context(cert, key)  # one line on an unreadable or mismatched pair


def tls_files(
    data_dir: Path, no_tls: bool, cert: Path | None, key: Path | None, sans: tuple[str, ...]
) -> tuple[Path, Path] | None:
    """The (certificate, key) to serve with — given, or generated into ``<data_dir>/tls`` — or None for HTTP."""
    from specman.runtime.tls import ensure_certificates

    check_tls(no_tls, cert, key)
    if no_tls:
        return None
    if cert is not None and key is not None:
        return cert, key
    files = ensure_certificates(data_dir / "tls", sans)
    return files.cert, files.key


def _after_fork_in_worker() -> None:
    """In a forked server worker, first thing: make the stop signals reach it.

    * SIGTERM/SIGINT get their default action until granian installs the worker's own handlers: the handlers
      inherited from the main process would swallow a signal sent while the worker starts, and the main process
      would then wait for a worker that never stops;
    * SIGKILL when the main process dies, even by ``kill -9`` (Linux ``prctl``): an orphaned worker would keep
      answering on the shared port with nobody syncing or supervising it (SIGKILL: granian's graceful stop was
      seen to hang in a worker whose main process was gone).
    """
    import ctypes
    import signal
    import sys

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _log_config() -> dict[str, Any]:
    """granian's loggers through the formatter specman's own handler uses (``logs.configure`` set it up)."""
    handlers = logging.getLogger("specman").handlers
    formatter = type(handlers[0].formatter) if handlers and handlers[0].formatter else logging.Formatter
    return {
        "formatters": {"generic": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        },
        "loggers": {"_granian": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }


def _protocol(tls_min: str) -> Any:
    """granian's name for the lowest TLS version.  granian serves TLS with rustls, whose TLS 1.2 suites are the
    ECDHE ones with AES-GCM and ChaCha20-Poly1305 only — the Mozilla "intermediate" list without its DHE suites
    (rustls has no finite-field DH) — and no CBC, RC4 or 3DES suite at all: there is nothing to narrow."""
    from granian.constants import SSLProtocols

    return SSLProtocols.tls12 if tls_min == "1.2" else SSLProtocols.tls13


def run_asgi(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    tls: tuple[Path, Path] | None,
    tls_min: str = "1.2",
) -> None:
    """Serve the ASGI app built by ``factory`` (``"module:function"``, called once in each worker) until a signal;
    ``tls_min``: ``"1.2"`` or ``"1.3"``, the lowest TLS version accepted."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    server = Granian(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        websockets=False,
        http1_settings=HTTP1Settings(keep_alive=True),
        ssl_cert=tls[0] if tls else None,
        ssl_key=tls[1] if tls else None,
        ssl_protocol_min=_protocol(tls_min),  # the reload hook passes it again
        log_access=False,
        log_dictconfig=_log_config(),
        respawn_failed_workers=True,
        # in-flight requests get this long after SIGTERM; it also bounds the wait for a worker that was being
        # spawned when the signal came (it can miss the signal before it installs its handlers)
        workers_kill_timeout=_KILL_TIMEOUT,
    )
    if tls is not None:
        _reload_on_new_certificate(server, *tls, tls_min)
    os.register_at_fork(after_in_child=_after_fork_in_worker)  # granian forks its workers from this process
    server.serve()


def _reload_on_new_certificate(server: Any, cert: Path, key: Path, tls_min: str) -> None:
    """Serve a renewed certificate without a restart (``specman.runtime.certwatch``): the watcher starts once granian
    handles SIGHUP (its start-up hook) and sends it one when the files change; before the new workers start,
    granian resolves the paths again (a Secret volume's old timestamped directory is gone by then)."""
    import signal

    from specman.runtime.certwatch import CertificateWatcher

    watcher = CertificateWatcher(cert, key, lambda: os.kill(os.getpid(), signal.SIGHUP))

    def resolve_again() -> None:
        try:
            server.build_ssl_context(cert, key, None, _protocol(tls_min), None, [], False)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            logging.getLogger("specman.tls").error("cannot load %s and %s: %s", cert, key, exc)

    server.on_startup(watcher.start)
    server.on_reload(resolve_again)
    server.on_shutdown(watcher.stop)
