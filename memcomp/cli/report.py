"""``memcomp report``: tables and plots of a results folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.options import PlotsChoice, parse_formats
from memcomp.errors import InputError
from memcomp.fsutil import dangling_link_problem


@app.command()
@handle_errors
def report(
    results: Path = typer.Argument(
        ..., help="A results folder written by `memcomp run` (or a `memcomp diagnose` folder)."
    ),
    out: Path = typer.Option(None, "--out", help="Report folder (default RESULTS/report)."),
    fmt: str = typer.Option("md,csv", "--format", help="Table formats: any of md,tex,csv."),
    html: bool = typer.Option(
        True, "--html/--no-html", help="Also write one self-contained report.html (default on)."
    ),
    plots: PlotsChoice = typer.Option(
        PlotsChoice.static,
        "--plots",
        help="report.html's memory and accuracy-vs-time figures: static SVG, or interactive "
        "plotly charts (plotly.js inlined, works offline; pip install 'memcomp\\[interactive]'). "
        "Run pages only: a diagnose folder's page stays static.",
    ),
) -> None:
    """Tables and plots mirroring the paper: accuracy, memory vs K, accuracy vs time, TTA.

    RESULTS may be a run folder or a suite folder (its newest run is used). With --html (the
    default) it also writes report.html; a suite folder, or a folder of suite folders
    (results/), also gets index.html linking every run's page. A folder written by
    `memcomp diagnose` gets its hypergradient error table and error-vs-memory/time plots.

    Examples:

      memcomp report results/quickstart

      memcomp report results/quickstart/20261127-101500 --format md,tex,csv

      memcomp report results/quickstart --plots interactive

      memcomp report results/

      memcomp report results/diagnose
    """
    from memcomp.report import build_report, print_report
    from memcomp.report.hypergrad import build_hypergrad_report, is_diagnostics_folder

    formats = parse_formats(fmt)
    link = dangling_link_problem(out) if out is not None else None
    if link:
        raise InputError(f"--out {out}: {link}")
    if is_diagnostics_folder(results):
        rep = build_hypergrad_report(results, out, formats, html)
        print_report(rep, console)
        return
    # --- HTML report and results index (issue 14) ---
    from memcomp.report.html import build_html_page, write_html_report
    from memcomp.report.index import find_runs, write_index

    mode = plots.value
    if html and plots is PlotsChoice.interactive:
        from memcomp.report.interactive import plotly_missing

        why = plotly_missing()
        if why:
            raise InputError(why)  # exit 2, before anything is written
    below = [] if (results / "runs.csv").exists() else find_runs(results)
    if below and html and not any(p.parent == results for p in below):
        index = write_index(results, out, lambda run: build_html_page(run, formats, mode), mode)
        console.print(escape(f"{len(below)} runs; index.html: {index}"), soft_wrap=True)
        return
    results = resolve_results_dir(results)
    rep = build_report(results, out, formats)
    print_report(rep, console)
    if html:
        page = write_html_report(results, rep, out if out is not None else results / "report", mode)
        if below:
            index = write_index(
                results.parent, None, lambda run: build_html_page(run, formats, mode), mode
            )
            console.print(escape(f"index.html: {index}"), soft_wrap=True)
        console.print(escape(f"report.html: {page}"), soft_wrap=True)


def resolve_results_dir(path: Path) -> Path:
    """A results folder, or a suite folder whose newest run is taken."""
    if (path / "runs.csv").exists():
        return path
    runs = sorted(p.parent for p in path.glob("*/runs.csv")) if path.is_dir() else []
    if runs:
        console.print(escape(f"using the newest run in {path}: {runs[-1].name}"), highlight=False)
        return runs[-1]
    raise InputError(
        f"{path}: no runs.csv here or in its subfolders; pass a folder written by "
        "`memcomp run` (results/<suite>/<timestamp>) or its suite folder (results/<suite>)"
    )
