"""The ``specman`` command line: one entry point, ``--help`` everywhere, exit 0 / 1 (failure) / 2 (usage).

Every option also reads ``SPECMAN_<OPTION>`` from the environment (settings: ``specman.cli.settings``).
The registry commands (push, pull, extract, tags, login, logout) live in ``registry.py``; the service commands
are loaded lazily from their own modules.
Passwords are read from stdin (``--password-stdin``), a file (``--password-file``) or ``SPECMAN_PASSWORD`` — never
from argv.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from specman import __version__, logs
from specman.cli.registry import extract, login, logout, pull, push, tags
from specman.cli.ui import UI
from specman.errors import SpecmanError, UsageError

__all__ = ["main"]

# the commands with their own modules, imported only when they run (or when --help lists them)
_LAZY_COMMANDS: dict[str, str] = {
    "console": "specman.cli.console:console",
    "migrate": "specman.cli.migrate:migrate",
    "quickstart": "specman.cli.quickstart:quickstart",
    "serve": "specman.cli.serve:serve",
    "sync": "specman.cli.sync:sync",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is needed.

    click's documented pattern for lazily loaded subcommands: ``specman push`` does not pay for importing the
    service, console and migration code (their modules and what they import), which the CLI's start-up time
    — part of every push and pull — would otherwise include.
    """

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, name = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), self.lazy[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=_LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="specman")
@click.option("-q", "--quiet", is_flag=True, envvar="SPECMAN_QUIET", help="No progress bars or status lines.")
@click.option(
    "-v", "--verbose", count=True, envvar="SPECMAN_VERBOSE", help="Log retries and HTTP details to stderr (-vv: debug)."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="SPECMAN_LOG_FORMAT",
    help="Log line format (logrus-style text or JSON).",
)
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: int, log_format: str) -> None:
    """specman: keep product manifests in an OCI registry and serve them over HTTPS."""
    logs.configure("debug" if verbose > 1 else "info" if verbose else "warning", fmt=log_format)
    ctx.obj = UI(quiet=quiet)


for _command in (push, pull, extract, tags, login, logout):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: map specman errors to one line on stderr and exit 1 (2 for usage errors)."""
    try:
        cli.main(args=argv, prog_name="specman", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SpecmanError as exc:  # the one place an error becomes output and an exit code; hints only here
        click.echo(f"Error: {exc.render()}", err=True)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"Error:{where}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    sys.exit(0)
