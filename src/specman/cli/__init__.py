"""The ``specman`` command line: the click group with its lazily loaded commands, the shared options and settings,
the terminal UI, and one module per command or command family.

This is the only package that renders output for a terminal and turns errors into exit codes and operator hints;
the library packages (``oci archive store sync server console migrate``) never import it.
"""

from specman.cli.main import main

__all__ = ["main"]
