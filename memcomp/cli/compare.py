"""``memcomp compare BASE NEW``: accuracy, memory, s/iter and time to accuracy of two runs side
by side, with a verdict per metric (rules: memcomp/report/compare.py, README "memcomp compare")."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.report import resolve_results_dir
from memcomp.errors import InputError


class FailOn(str, Enum):
    """``--fail-on``: never (report only) or regression (exit 1 on one)."""

    never = "never"
    regression = "regression"


@app.command()
@handle_errors
def compare(
    base: Path = typer.Argument(..., help="Reference results folder (or suite folder: newest)."),
    new: Path = typer.Argument(..., help="Results folder to judge against BASE."),
    html: Path = typer.Option(None, "--html", help="Also write the comparison page to FILE."),
    fail_on: FailOn = typer.Option(
        FailOn.never, "--fail-on", help="regression: exit 1 when a metric regressed beyond noise."
    ),
    junit: Path = typer.Option(None, "--junit", help="Write JUnit XML to this file."),
    csv: Path = typer.Option(
        None, "--csv", help="Write every change (one row per cell and metric) to this CSV file."
    ),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Significance level."),
    time_tol: float = typer.Option(
        0.10, "--time-tolerance", min=0.0, help="Smallest relative time change that counts."
    ),
    memory_tol: float = typer.Option(
        0.05, "--memory-tolerance", min=0.0, help="Smallest relative memory change that counts."
    ),
) -> None:
    """Accuracy, peak memory, s/iter and time to accuracy of two runs side by side, with verdicts.

    Cells are matched by id, or by configuration when ids differ. See README "memcomp compare"
    for the noise rules.

    Examples:

      memcomp compare results/quickstart/20261201-090000 results/quickstart/20261202-090000

      memcomp compare base/ new/ --fail-on regression --junit compare.xml --html compare.html

      memcomp compare base/ new/ --csv changes.csv   # every row; the terminal shows 200 at most
    """
    from memcomp.report.compare import Thresholds, compare_results
    from memcomp.report.compare_html import write_compare_html
    from memcomp.report.compare_output import print_comparison, write_csv, write_junit

    base, new = resolve_results_dir(base), resolve_results_dir(new)
    th = Thresholds(alpha=alpha, memory=memory_tol, time=time_tol)
    cmp = compare_results(base, new, th)
    if not cmp.matched:
        raise InputError(f"{base} and {new}: no cell matches by id or by configuration")
    print_comparison(cmp, console)
    if junit is not None:
        write_junit(cmp, junit)
        console.print(escape(f"wrote {junit}"), soft_wrap=True)
    if csv is not None:
        console.print(escape(f"wrote {write_csv(cmp, csv)}"), soft_wrap=True)
    if html is not None:
        console.print(escape(f"compare.html: {write_compare_html(cmp, html)}"), soft_wrap=True)
    raise typer.Exit(1 if fail_on == FailOn.regression and cmp.n_regressions else 0)
