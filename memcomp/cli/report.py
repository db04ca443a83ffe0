"""``memcomp report``: tables and plots of a results folder."""

from __future__ import annotations

from pathlib import Path

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.options import parse_formats
from memcomp.errors import InputError


@app.command()
@handle_errors
def report(
    results: Path = typer.Argument(..., help="A results folder written by `memcomp run`."),
    out: Path = typer.Option(None, "--out", help="Report folder (default RESULTS/report)."),
    fmt: str = typer.Option("md,csv", "--format", help="Table formats: any of md,tex,csv."),
) -> None:
    """Tables and plots mirroring the paper: accuracy, memory vs K, accuracy vs time, TTA.

    RESULTS may be a run folder or a suite folder (its newest run is used).

    Examples:

      memcomp report results/quickstart

      memcomp report results/quickstart/20261127-101500 --format md,tex,csv
    """
    from memcomp.report import build_report, print_report

    formats = parse_formats(fmt)
    results = resolve_results_dir(results)
    rep = build_report(results, out, formats)
    print_report(rep, console)


def resolve_results_dir(path: Path) -> Path:
    """A results folder, or a suite folder whose newest run is taken."""
    if (path / "runs.csv").exists():
        return path
    runs = sorted(p.parent for p in path.glob("*/runs.csv")) if path.is_dir() else []
    if runs:
        console.print(f"using the newest run in {path}: {runs[-1].name}")
        return runs[-1]
    raise InputError(
        f"{path}: no runs.csv here or in its subfolders; pass a folder written by "
        "`memcomp run` (results/<suite>/<timestamp>) or its suite folder (results/<suite>)"
    )
