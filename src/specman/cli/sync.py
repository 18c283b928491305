"""``specman sync REPO --data-dir DIR``: one reconcile (``--once``) or the sync loop, logging as logrus does.

The command only wires settings to ``specman.sync``: ``SyncSettings`` (here: every option ``sync`` and ``serve``
share) with the registry settings and extract limits of ``specman.cli.options``; the log lines go to stderr at
info level (``--log-format`` of the group applies), the ``--once`` summary (generation, then ``tag digest`` per
published tag) to stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import click

from specman import logs
from specman.cli.options import Duration, LimitSettings, RegistrySettings, open_source
from specman.cli.settings import Settings, arg, opt, uses
from specman.cli.ui import UI
from specman.console.client import ConsoleClient
from specman.errors import SpecmanError, UsageError
from specman.oci import Repository
from specman.oci.http import TLSOptions
from specman.runtime.signals import stop_on_signals
from specman.store import Store
from specman.sync import SyncConfig, SyncResult, TagFilter, reconcile_once, run_loop
from specman.sync.configdir import ConfigDir
from specman.sync.source import ConsoleSource

__all__ = ["Source", "SyncSettings", "configure_logging", "sync"]

Source = Repository | ConsoleSource | ConfigDir  # a fixed repository, or one named anew before every sync


@dataclass(frozen=True)
class SyncSettings(Settings):
    """What ``sync`` and ``serve`` share: the source, the data dir, which tags, how often, how many at once.

    To add a sync option: declare it here as one field (``opt(...)``), and give ``config()`` its value for the
    reconcile (``specman.sync.SyncConfig``), which uses it.
    """

    param: ClassVar[str] = "sync"

    repo: str | None = arg("repo", envvar="SPECMAN_SOURCE", required=False)
    data_dir: Path = opt(
        "--data-dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="The data directory (versions, generations, current).",
    )
    tag_globs: tuple[str, ...] = opt(
        "--tags",
        multiple=True,
        envvar="SPECMAN_TAGS",
        metavar="GLOB",
        help="Only tags matching this glob (repeatable; default all).",
    )
    semver: str | None = opt("--semver", metavar="RANGE", help="Only tags in this range, e.g. '>=4.5.0 <5'.")
    keep_deleted: bool = opt("--keep-deleted", is_flag=True, help="Keep serving tags deleted in the registry.")
    parallel: int = opt(
        "--parallel", type=click.IntRange(1, 32), default=2, show_default=True, help="Versions downloaded at once."
    )
    interval: float = opt(
        "--interval",
        type=Duration(),
        default="30s",
        show_default=True,
        help="Time between syncs without --once (failures back off exponentially, at most 5m).",
    )
    config_dir: Path | None = opt(
        "--config-dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A mounted ConfigMap: files 'source' and 'interval' override REPO and --interval, read before every sync.",
    )
    console_url: str | None = opt(
        "--console",
        metavar="URL",
        help="Take the source from the console: its registry marked 'Contains Spectro Manifests' (instead of REPO).",
    )
    console_token_file: Path | None = opt(
        "--console-token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The console's service token (first line); re-read at each request.",
    )
    console_ca_file: str | None = opt(
        "--console-ca-file", type=click.Path(exists=True, dir_okay=False), help="CA certificate (PEM) of the console."
    )

    def config(self, limits: LimitSettings) -> SyncConfig:
        """The reconcile's settings."""
        return SyncConfig(
            tag_filter=TagFilter(self.tag_globs, self.semver),
            limits=limits.extract_limits(),
            keep_deleted=self.keep_deleted,
            parallel=self.parallel,
        )

    def open_source(self, registry: RegistrySettings, *, long_running: bool) -> Source:
        """The source to sync from: REPO, the console's registry (``--console``) or a config dir.
        ``long_running`` (the sync loop, serve): credential files may appear later (a Secret created after the pod)."""
        options = registry.options(files_may_appear=long_running)
        if self.config_dir is not None:
            if self.console_url is not None:
                raise UsageError("--config-dir and --console both name the source: give one")
            return ConfigDir(
                self.config_dir,
                open_source=lambda text: open_source(text, options),
                source=self.repo,
                interval=self.interval,
            )
        if self.console_url is None:
            if self.repo is None:
                raise UsageError("missing REPO (or --console URL with --console-token-file, or --config-dir)")
            return open_source(self.repo, options)
        if self.repo is not None:
            raise UsageError("give REPO or --console, not both")
        if self.console_token_file is None:
            raise UsageError("--console needs --console-token-file (the console's service token)")
        if options.oci_layout or options.username or options.username_file or options.password or options.password_file:
            raise UsageError("with --console the registry and its credentials come from the console")
        client = ConsoleClient(
            self.console_url, token_file=self.console_token_file, tls=TLSOptions(ca_file=self.console_ca_file)
        )
        return ConsoleSource(client, options)


def reconciler(source: Source, store: Store, config: SyncConfig) -> Callable[[], SyncResult]:
    """One reconcile of ``store`` against ``source`` (named anew each time for a console or config dir)."""

    def reconcile() -> SyncResult:
        return reconcile_once(source() if isinstance(source, ConsoleSource | ConfigDir) else source, store, config)

    return reconcile


def interval_of(source: Source, settings: SyncSettings) -> float | Callable[[], float]:
    """The loop's interval: ``--interval``, or the config dir's (read before every sync)."""
    return source.interval if isinstance(source, ConfigDir) else settings.interval


def configure_logging(ctx: click.Context) -> None:
    """Service commands log at info level (debug with -vv) in the group's ``--log-format``."""
    root = ctx.find_root().params
    logs.configure("debug" if root.get("verbose", 0) > 1 else "info", fmt=root.get("log_format") or "text")


def _print_summary(ui: UI, result: SyncResult) -> None:
    ui.result(f"generation {result.generation if result.generation is not None else 'none'}")
    for tag, digest in result.digests.items():
        ui.result(f"{tag} {digest}")


@click.command()
@uses(SyncSettings, RegistrySettings, LimitSettings)
@click.option("--once", is_flag=True, envvar="SPECMAN_ONCE", help="One reconcile, then exit (1 if anything failed).")
@click.pass_context
def sync(
    ctx: click.Context, /, sync: SyncSettings, registry: RegistrySettings, limits: LimitSettings, once: bool
) -> None:
    """Reconcile the data directory DIR with the tags of REPO (HOST[:PORT]/NAME, or a layout path), or of the
    registry the console names (--console)."""
    ui: UI = ctx.obj
    configure_logging(ctx)
    source = sync.open_source(registry, long_running=not once)
    try:
        with Store(sync.data_dir) as store:
            reconcile = reconciler(source, store, sync.config(limits))
            if once:
                result = reconcile()
                _print_summary(ui, result)
                if not result.ok:
                    causes = "; ".join(f"{tag}: {message}" for tag, message in sorted(result.failed.items()))
                    raise SpecmanError(f"sync of {source.display}: {len(result.failed)} tag(s) failed: {causes}")
                return
            with stop_on_signals() as stop:
                run_loop(reconcile, interval=interval_of(source, sync), stop=stop)
    finally:
        source.close()
