"""``memcomp new learner NAME``: scaffold a plugin package (memcomp.scaffold)."""

from __future__ import annotations

from pathlib import Path

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import esc, shell_arg

new_app = typer.Typer(help="Start a plugin: an installable package memcomp discovers.")
app.add_typer(new_app, name="new")


@new_app.command("learner")
@handle_errors
def new_learner(
    name: str = typer.Argument(..., help="Learner name (lower case, digits, '-')."),
    folder: Path = typer.Option(None, "--dir", help="Package folder (default ./NAME)."),
) -> None:
    """Write an installable package with learner NAME: pyproject (entry point), the learner with
    the contract's hooks, a test calling memcomp verify, and a suite beside maml and mrml.

    Example:

      memcomp new learner mine && pip install -e ./mine && memcomp verify mine
    """
    from memcomp.scaffold import new_learner as write

    folder = folder or Path(name)
    for path in write(name, folder):
        console.print(f"wrote {esc(path)}", highlight=False)
    console.print(
        f"next: pip install -e {shell_arg(folder)} && memcomp verify {shell_arg(name)} && "
        f"memcomp run {shell_arg(folder / 'suite.yaml')}",
        highlight=False,
        soft_wrap=True,
    )
