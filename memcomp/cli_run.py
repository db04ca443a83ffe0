"""``memcomp run``: progress display, results folder, summary table, exit code."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from memcomp.cells import Cell
from memcomp.runner import CellOutcome, resolve_device


class RichProgress:
    """Cells done / total, iterations of the current cell, its last validation accuracy."""

    def __init__(self, progress: Progress, total_cells: int) -> None:
        self.p = progress
        self.cells: TaskID = progress.add_task("cells", total=total_cells, info="")
        self.iters: TaskID | None = None

    def cell_started(self, cell: Cell, iterations: int) -> None:
        if self.iters is not None:
            self.p.remove_task(self.iters)
        self.iters = self.p.add_task(f"  {cell.learner.label()}", total=iterations, info="")

    def iteration_done(self, iteration: int, val_acc: float | None) -> None:
        if self.iters is None:
            return
        info = {"info": f"val {val_acc:5.1f}%"} if val_acc is not None else {}
        self.p.update(self.iters, completed=iteration, **info)

    def cell_done(self, outcome: CellOutcome) -> None:
        self.p.advance(self.cells)


def summary_table(outcomes: list[CellOutcome]) -> Table:
    t = Table(title="summary")
    for col, just in [
        ("cell id", "left"), ("learner", "left"), ("status", "left"), ("test acc %", "right"),
        ("peak MB", "right"), ("mem source", "left"), ("s/iter", "right"),
    ]:  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for o in outcomes:
        r = o.row
        acc = (
            f"{r['test_acc']:.2f} ± {r['test_ci95']:.2f}" if r.get("test_acc") is not None else "-"
        )
        mem = f"{r['peak_mem_mb']:.1f}" if r.get("peak_mem_mb") is not None else "-"
        spi = f"{r['sec_per_iter']:.3f}" if r.get("sec_per_iter") is not None else "-"
        status = r["status"] if o.ok else f"[red]{r['status']}[/]: {r.get('error', '')[:60]}"
        t.add_row(r["cell_id"], r["label"].split(" | ")[0], status, acc, mem,
                  str(r.get("mem_source", "")), spi)  # fmt: skip
    return t


def run_suite_command(
    suite_path: Path,
    out: Path,
    device_opt: str | None,
    only: str | None,
    dry_run: bool,
    console: Console,
) -> int:
    """Validate, expand, run; returns the exit code (0 ok, 1 some cell failed)."""
    from memcomp.cli import _cells_table
    from memcomp.orchestrate import manifest, new_results_dir, run_cells
    from memcomp.suite import expand, filter_cells, load_suite

    suite = load_suite(suite_path)
    cells = expand(suite)
    if only:
        cells = filter_cells(cells, only)
        if not cells:
            from memcomp.errors import InputError

            raise InputError(f"--only {only!r} matches no cell of {suite_path}")
    if dry_run:
        console.print(_cells_table(cells, f"suite {suite.name}: {len(cells)} cells (dry run)"))
        return 0
    device = resolve_device(device_opt or suite.device)
    results = new_results_dir(out, suite.name)
    results.path.mkdir(parents=True)
    results.write_manifest(manifest(suite.name, suite.source_text, device, cells))
    console.print(f"running {len(cells)} cells of suite [bold]{suite.name}[/] on {device} -> "
                  f"{results.path}")  # fmt: skip
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as p:  # fmt: skip
        rp = RichProgress(p, len(cells))
        outcomes = run_cells(cells, results, device, rp, on_done=rp.cell_done)
    console.print(summary_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    console.print(f"results: {results.path}")
    console.print(f"next: memcomp report {results.path}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(outcomes)} cells did not finish ok[/]")
        return 1
    return 0
