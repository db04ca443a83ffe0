"""``memcomp run``: preflight, progress display, results folder, resume, summary, exit code."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
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

from memcomp.config.cells import Cell
from memcomp.runner import CellOutcome

EXIT_INTERRUPTED = 130


class RichProgress:
    """Cells done / total, and one bar per running cell with its last validation accuracy."""

    def __init__(self, progress: Progress, total_cells: int) -> None:
        self.p = progress
        self.cells: TaskID = progress.add_task("cells", total=total_cells, info="")
        self.bars: dict[str, TaskID] = {}

    def cell_started(self, cell: Cell, iterations: int) -> None:
        if cell.id in self.bars:
            self.p.remove_task(self.bars.pop(cell.id))
        self.bars[cell.id] = self.p.add_task(
            f"  {cell.learner.label()} s{cell.seed}", total=iterations, info=""
        )

    def cell_iteration(self, cell: Cell, iteration: int, val_acc: float | None) -> None:
        bar = self.bars.get(cell.id)
        if bar is None:
            return
        info = {"info": f"val {val_acc:5.1f}%"} if val_acc is not None else {}
        self.p.update(bar, completed=iteration, **info)

    def cell_done(self, outcome: CellOutcome) -> None:
        bar = self.bars.pop(str(outcome.row.get("cell_id")), None)
        if bar is not None:
            self.p.remove_task(bar)
        if not outcome.ok:
            r = outcome.row
            self.p.console.print(
                f"[red]{r.get('status')}[/] {r.get('label', r.get('cell_id'))}: "
                f"{str(r.get('error', ''))[:200]}",
                highlight=False,
            )
        self.p.advance(self.cells)


def _learner_label(row: dict) -> str:
    """Learner name with the parameters that differ from its defaults, e.g. ``maml(K=3)``."""
    from memcomp.cli import short_label
    from memcomp.config.cells import Component
    from memcomp.learners import LEARNERS

    name = row.get("learner", "?")
    try:
        keys = LEARNERS.get(name).params.model_fields
    except Exception:  # noqa: BLE001 - unknown learner in an old row: show the name only
        return str(name)
    params = {k: (None if _missing(row[k]) else row[k]) for k in keys if k in row}
    return short_label("learner", Component(name, params))


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def summary_table(outcomes: list[CellOutcome]) -> Table:
    sources = sorted({str(o.row.get("mem_source")) for o in outcomes if o.row.get("mem_source")})
    t = Table(
        title="summary",
        caption=f"peak MB above baseline, source: {', '.join(sources) or '-'}; "
        "cell ids and all columns in runs.csv",
    )
    t.add_column("learner", overflow="fold", ratio=3)
    t.add_column("dataset", overflow="fold", ratio=1)
    t.add_column("status", overflow="fold", ratio=2)
    t.add_column("test acc %", justify="right", no_wrap=True)
    t.add_column("peak MB", justify="right", no_wrap=True)
    t.add_column("s/iter", justify="right", no_wrap=True)
    for o in outcomes:
        r = o.row
        acc = (
            f"{r['test_acc']:.2f} ± {r['test_ci95']:.2f}" if r.get("test_acc") is not None else "-"
        )
        mem = f"{r['peak_mem_mb']:.1f}" if r.get("peak_mem_mb") is not None else "-"
        spi = f"{r['sec_per_iter']:.3f}" if r.get("sec_per_iter") is not None else "-"
        status = r["status"] if o.ok else f"[red]{r['status']}[/]: {str(r.get('error', ''))[:60]}"
        data = f"{r.get('dataset')} {r.get('ways')}w{r.get('shots')}s"
        t.add_row(_learner_label(r), data, status, acc, mem, spi)
    return t


def resume_command(suite_path: Path, results: Path, extra: Sequence[str] = ()) -> str:
    """The command line that resumes ``results``."""
    args = ["memcomp", "run", str(suite_path), "--resume", str(results), *extra]
    return " ".join(shlex.quote(a) for a in args)


def run_suite_command(
    suite_path: Path,
    out: Path,
    device_opt: str | None,
    only: str | None,
    dry_run: bool,
    console: Console,
    resume: Path | None = None,
    jobs: int = 1,
    memory_limit: float | None = None,
    isolation: str = "process",
    threads: int | None = None,
) -> int:
    """Validate, preflight, expand, run; returns the exit code.

    0: every cell ok; 1: some cell did not finish ok (oom, diverged, error); 130: interrupted.
    Bad input raises :class:`~memcomp.errors.InputError` (exit 2) before anything is written.
    """
    if threads is not None and threads < 1:
        from memcomp.errors import InputError

        raise InputError(f"--threads: must be >= 1 (got {threads})")
    from memcomp.cli import _cells_table
    from memcomp.config import expand, filter_cells, load_suite
    from memcomp.errors import InputError
    from memcomp.isolation import load_plugins
    from memcomp.orchestrate import (
        Interrupted,
        RunOptions,
        clean_temp_files,
        completed_ids,
        create_results_dir,
        manifest,
        new_results_dir,
        resume_manifest,
        run_cells,
        stale_ids,
    )
    from memcomp.preflight import preflight
    from memcomp.runner import clear_data_cache
    from memcomp.store import ResultsDir

    load_plugins()
    suite = load_suite(suite_path)
    all_cells = expand(suite)
    cells = all_cells
    if only:
        cells = filter_cells(cells, only)
        if not cells:
            raise InputError(f"--only {only!r} matches no cell of {suite_path}")
    plan = preflight(
        suite, cells, device=device_opt, out=out, resume=resume, jobs=jobs,
        isolation=isolation, memory_limit_mb=memory_limit,
    )  # fmt: skip
    if isolation == "process":
        clear_data_cache()  # cells load their data in their own processes
    device = plan.device
    done: set[str] = set()
    if plan.resume_dir is not None:
        results = ResultsDir(plan.resume_dir)
        done = completed_ids(results) & {c.id for c in cells}
    todo = [c for c in cells if c.id not in done]
    if dry_run:
        console.print(_cells_table(todo, f"suite {suite.name}: {len(todo)} cells to run (dry run)"))
        if done:
            console.print(f"{len(done)} cells already done in {plan.resume_dir}")
        return 0
    options = RunOptions(
        isolation=isolation, jobs=jobs, memory_limit_mb=memory_limit, threads=threads
    )
    info = manifest(suite.name, suite.source_text, device, all_cells, options)
    if plan.resume_dir is None:
        results = new_results_dir(out, suite.name)
        create_results_dir(results, info)
    else:
        clean_temp_files(results)
        old_device = results.manifest().get("device")
        if old_device and old_device != device.type:
            console.print(f"[yellow]note[/]: {results.path} was started on {old_device}, "
                          f"resuming on {device.type}; rows record their device")  # fmt: skip
        results.write_manifest(resume_manifest(results, info, all_cells))
        stale = stale_ids(results, all_cells)
        console.print(
            f"resuming {results.path}: {len(done)} of {len(cells)} cells already done, "
            f"running {len(todo)}"
            + (f"; {len(stale)} rows of cells no longer in the suite are kept" if stale else "")
        )
    if memory_limit is not None and device.type != "cuda":
        console.print(f"[yellow]note[/]: --memory-limit {memory_limit:g} MB is ignored on "
                      f"{device.type} (it caps CUDA memory only)")  # fmt: skip
    if jobs > 1:
        console.print(f"[yellow]note[/]: {jobs} cells run at once and share the device: "
                      "their timings disturb each other (peak memory is per process)")  # fmt: skip
    console.print(f"running {len(todo)} cells of suite [bold]{suite.name}[/] on {device} "
                  f"({isolation}) -> {results.path}")  # fmt: skip
    extra = [f"--device={device_opt}"] if device_opt else []
    extra += [f"--only={only}"] if only else []
    how = resume_command(suite_path, results.path, extra)
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        ) as p:  # fmt: skip
            rp = RichProgress(p, len(todo))
            outcomes = run_cells(todo, results, device, rp, options=options)
    except Interrupted as e:
        if e.outcomes:
            console.print(summary_table(e.outcomes))
        console.print(
            f"[yellow]interrupted[/]: {len(e.outcomes) + len(done)} of {len(cells)} cells are "
            f"saved in {results.path}; {len(e.unfinished)} not finished.\nresume with: {how}",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    console.print(summary_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    console.print(f"results: {results.path}")
    console.print(f"next: memcomp report {results.path}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(outcomes)} cells did not finish ok[/] "
                      f"(re-run them with: {how})", highlight=False)  # fmt: skip
        return 1
    return 0
