"""``memcomp status`` (how far a run is, SLURM jobs included) and ``memcomp merge``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import TextTable, esc
from memcomp.cli.report import resolve_results_dir


@app.command()
@handle_errors
def status(
    results: Path = typer.Argument(..., help="A results folder written by `memcomp run`."),
) -> None:
    """Show how far a run is: cells done, failed, running, queued (SLURM jobs included).

    Examples:

      memcomp status results/paper-accuracy/20261201-0900
    """
    from memcomp.exec.slurm_executor import folder_status
    from memcomp.results.store import ResultsDir

    path = results if (results / "manifest.json").exists() else resolve_results_dir(results)
    cells = folder_status(path)
    ResultsDir(path).check_ends()  # a torn curves/episodes tail is exit 2 too
    counts = Counter(c["state"] for c in cells)
    table = TextTable(title=f"{path}: {len(cells)} cells")
    for col in ("cell id", "label", "state", "SLURM job"):
        table.add_column(col, overflow="fold")
    for c in cells:
        if c["state"] != "ok":
            table.add_row(*(str(c[k]) for k in ("cell_id", "label", "state", "job")))
    if table.row_count:
        console.print(table)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    console.print(f"{len(cells)} cells: {esc(summary)}", highlight=False)


@app.command()
@handle_errors
def merge(
    folders: list[Path] = typer.Argument(..., help="Results folders of one suite."),
    out: Path = typer.Option(..., "--out", help="The merged folder to create (must not exist)."),
) -> None:
    """Merge results folders of the same suite (e.g. run on different machines) into one.

    A cell that ran in several folders keeps one row: a finished (ok) one, else the latest;
    each such choice is printed. Folders of different suites are refused.

    Examples:

      memcomp merge results/s/20261201-0900 results/s/20261201-1000 --out results/s/merged
    """
    from memcomp.exec.merge import merge_results, report_lines

    for line in report_lines(merge_results(folders, out)):
        console.print(esc(line), highlight=False, soft_wrap=True)
