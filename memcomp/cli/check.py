"""``memcomp check``: memory budgets for CI."""

from __future__ import annotations

from pathlib import Path

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.options import DeviceChoice


@app.command()
@handle_errors
def check(
    budgets: Path = typer.Argument(..., help="Budget YAML file (or a suite with `budgets:`)."),
    update: bool = typer.Option(False, "--update", help="Rewrite baselines from this run."),
    junit: Path = typer.Option(None, "--junit", help="Write JUnit XML to this file."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, "--device", help="Where to measure."),
) -> None:
    """Fail (exit 1) when a learner's peak memory grows past its budget.

    Example: memcomp check budgets/ci.yaml --junit memcomp-budgets.xml
    """
    from memcomp.budgets import run_check

    raise typer.Exit(
        run_check(budgets, update=update, junit=junit, device=device.value, console=console)
    )
