"""``specman sync REPO --data-dir DIR``: one reconcile (``--once``) or the sync loop, logging as logrus does.

The command only wires options to ``specman.sync``: the registry options and extract limits are the ones
declared in ``specman.cli``; the log lines go to stderr at info level (``--log-format`` of the group applies),
the ``--once`` summary (generation, then ``tag digest`` per published tag) to stdout.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

import click

from specman import logs
from specman.archive import ExtractLimits
from specman.cli_options import limits, open_source, registry_options, registry_options_from, with_extract_limits
from specman.console.client import ConsoleClient
from specman.errors import SpecmanError, UsageError
from specman.oci import Repository
from specman.oci.http import TLSOptions, stop_retrying
from specman.signature.policy import Verifier, VerifyPolicy
from specman.signature_command import verify_options, verify_policy_from
from specman.store import Store
from specman.sync import SyncResult, TagFilter, reconcile_once, run_loop
from specman.sync.configdir import ConfigDir
from specman.sync.loop import parse_duration
from specman.sync.source import ConsoleSource
from specman.ui import UI

__all__ = ["Duration", "SyncSettings", "stop_on_signals", "sync", "sync_options", "sync_settings"]

F = TypeVar("F", bound=Callable[..., Any])
Source = Repository | ConsoleSource | ConfigDir  # a fixed repository, or one named anew before every sync


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``30s``, ``5m``, ``1h``, ``500ms`` or plain seconds → seconds (a float > 0)."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float) and value > 0:
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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


def _print_summary(ui: UI, result: SyncResult) -> None:
    ui.result(f"generation {result.generation if result.generation is not None else 'none'}")
    for tag, digest in result.digests.items():
        ui.result(f"{tag} {digest}")


def sync_options(func: F) -> F:
    """REPO, ``--data-dir``, the tag filter, ``--parallel``, ``--interval``, registry options and extract limits:
    the options ``sync`` and ``serve`` share."""
    for option in reversed(_SYNC_OPTIONS):
        func = option(func)
    return func


_SYNC_OPTIONS: Final[list[Callable[[Any], Any]]] = [
    click.argument("repo", envvar="SPECMAN_SOURCE", required=False),
    click.option(
        "--data-dir",
        required=True,
        envvar="SPECMAN_DATA_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="The data directory (versions, generations, current).",
    ),
    click.option(
        "--tags",
        "tag_globs",
        multiple=True,
        envvar="SPECMAN_TAGS",
        metavar="GLOB",
        help="Only tags matching this glob (repeatable; default all).",
    ),
    click.option(
        "--semver", envvar="SPECMAN_SEMVER", metavar="RANGE", help="Only tags in this range, e.g. '>=4.5.0 <5'."
    ),
    click.option(
        "--keep-deleted", is_flag=True, envvar="SPECMAN_KEEP_DELETED", help="Keep serving tags deleted in the registry."
    ),
    click.option(
        "--parallel",
        type=click.IntRange(1, 32),
        default=2,
        show_default=True,
        envvar="SPECMAN_PARALLEL",
        help="Versions downloaded at once.",
    ),
    click.option(
        "--interval",
        type=Duration(),
        default="30s",
        show_default=True,
        envvar="SPECMAN_INTERVAL",
        help="Time between syncs without --once (failures back off exponentially, at most 5m).",
    ),
    click.option(
        "--config-dir",
        envvar="SPECMAN_CONFIG_DIR",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A mounted ConfigMap: files 'source' and 'interval' override REPO and --interval, read before every sync.",
    ),
    click.option(
        "--console",
        "console_url",
        envvar="SPECMAN_CONSOLE",
        metavar="URL",
        help="Take the source from the console: its registry marked 'Contains Spectro Manifests' (instead of REPO).",
    ),
    click.option(
        "--console-token-file",
        envvar="SPECMAN_CONSOLE_TOKEN_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The console's service token (first line); re-read at each request.",
    ),
    click.option(
        "--console-ca-file",
        envvar="SPECMAN_CONSOLE_CA_FILE",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate (PEM) of the console.",
    ),
    registry_options,
    with_extract_limits,
    verify_options,
]


@dataclass(frozen=True)
class SyncSettings:
    """What ``sync_options`` collected, minus the data dir and interval: enough to build one reconcile."""

    tag_filter: TagFilter
    limits: ExtractLimits
    keep_deleted: bool
    parallel: int
    interval: float | Callable[[], float]  # a function when a config dir may change it
    policy: VerifyPolicy = field(default_factory=VerifyPolicy)

    def reconciler(self, source: Source, store: Store) -> Callable[[], SyncResult]:
        verifier = Verifier(self.policy) if self.policy.enabled else None  # one for every run: results are kept

        def reconcile() -> SyncResult:
            return reconcile_once(
                source() if isinstance(source, ConsoleSource | ConfigDir) else source,
                store,
                tag_filter=self.tag_filter,
                limits=self.limits,
                keep_deleted=self.keep_deleted,
                parallel=self.parallel,
                verifier=source.verifier(verifier) if isinstance(source, ConsoleSource) else verifier,
            )

        return reconcile


def sync_settings(
    ctx: click.Context,
    repo: str | None,
    tag_globs: tuple[str, ...],
    semver: str | None,
    keep_deleted: bool,
    parallel: int,
    max_size: int | None,
    max_files: int | None,
    interval: float,
    kw: dict[str, Any],
    *,
    long_running: bool = False,
) -> tuple[Source, SyncSettings]:
    """Configure logging as the group asks, and turn the shared options into an open source and settings.
    ``long_running`` (the sync loop, serve): credential files may appear later (a Secret created after the pod)."""
    root = ctx.find_root().params
    logs.configure("debug" if root.get("verbose", 0) > 1 else "info", fmt=root.get("log_format") or "text")
    console_url, token_file, console_ca = kw.pop("console_url"), kw.pop("console_token_file"), kw.pop("console_ca_file")
    config_dir: Path | None = kw.pop("config_dir")
    options = registry_options_from(kw, files_may_appear=long_running)
    policy = verify_policy_from(kw)
    settings = SyncSettings(
        TagFilter(tag_globs, semver), limits(max_size, max_files), keep_deleted, parallel, interval, policy
    )
    if config_dir is not None:
        if console_url is not None:
            raise UsageError("--config-dir and --console both name the source: give one")
        source = ConfigDir(
            config_dir, open_source=lambda text: open_source(text, options), source=repo, interval=interval
        )
        return source, replace(settings, interval=source.interval)
    if console_url is None:
        if repo is None:
            raise UsageError("missing REPO (or --console URL with --console-token-file, or --config-dir)")
        return open_source(repo, options), settings
    if repo is not None:
        raise UsageError("give REPO or --console, not both")
    if token_file is None:
        raise UsageError("--console needs --console-token-file (the console's service token)")
    if options.oci_layout or options.username or options.username_file or options.password or options.password_file:
        raise UsageError("with --console the registry and its credentials come from the console")
    client = ConsoleClient(console_url, token_file=token_file, tls=TLSOptions(ca_file=console_ca))
    return ConsoleSource(client, options), settings


@click.command()
@sync_options
@click.option("--once", is_flag=True, envvar="SPECMAN_ONCE", help="One reconcile, then exit (1 if anything failed).")
@click.pass_context
def sync(
    ctx: click.Context,
    /,
    repo: str | None,
    data_dir: Path,
    once: bool,
    tag_globs: tuple[str, ...],
    semver: str | None,
    keep_deleted: bool,
    parallel: int,
    interval: float,
    max_size: int | None,
    max_files: int | None,
    **kw: Any,
) -> None:
    """Reconcile the data directory DIR with the tags of REPO (HOST[:PORT]/NAME, or a layout path), or of the
    registry the console names (--console)."""
    ui: UI = ctx.obj
    source, settings = sync_settings(
        ctx, repo, tag_globs, semver, keep_deleted, parallel, max_size, max_files, interval, kw, long_running=not once
    )
    try:
        with Store(data_dir) as store:
            reconcile = settings.reconciler(source, store)
            if once:
                result = reconcile()
                _print_summary(ui, result)
                if not result.ok:
                    causes = "; ".join(f"{tag}: {message}" for tag, message in sorted(result.failed.items()))
                    raise SpecmanError(f"sync of {source.display}: {len(result.failed)} tag(s) failed: {causes}")
                return
            with stop_on_signals() as stop:
                run_loop(reconcile, interval=settings.interval, stop=stop)
    finally:
        source.close()
