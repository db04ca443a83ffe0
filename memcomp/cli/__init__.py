"""The ``memcomp`` command line (Typer), one module per command group.

``app`` is built in :mod:`memcomp.cli.app`; importing the command modules below registers their
commands on it. Entry points: the ``memcomp`` console script and ``python -m memcomp``.
"""

from __future__ import annotations

from memcomp.cli import (  # noqa: F401  (importing them registers the commands)
    check,
    cluster,
    compare,
    data,
    diagnose,
    new,
    plan,
    report,
    run,
    suite,
    verify,
)
from memcomp.cli.app import app, console, err_console, handle_errors, hoist_plugin_options
from memcomp.cli.common import short_label


def main() -> None:
    """Console-script entry point."""
    import sys

    app(hoist_plugin_options(sys.argv[1:]))


__all__ = ["app", "console", "err_console", "handle_errors", "main", "short_label"]
