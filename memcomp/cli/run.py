"""``memcomp run``: preflight, progress display, results folder, resume, summary, exit code."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import cells_table
from memcomp.cli.options import DeviceChoice, ExecutorChoice, Isolation
from memcomp.cli.progress import RichProgress, summary_table

EXIT_INTERRUPTED = 130


@app.command()
@handle_errors
def run(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    out: Path = typer.Option(Path("results"), "--out", help="Results root folder."),
    device: DeviceChoice = typer.Option(
        None, "--device", help="Where cells run (default: the suite's `device`)."
    ),
    only: str = typer.Option(
        None, "--only", help="Run only cells whose id, learner or label match this glob."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check everything, list the cells to run, write nothing."
    ),
    resume: Path = typer.Option(
        None, "--resume", help="Continue this results folder: skip its ok cells, run the rest."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Cells run at once (process isolation)."
    ),
    memory_limit: float = typer.Option(
        None, "--memory-limit", help="Cap each cell's CUDA memory at this many MB."
    ),
    isolation: Isolation = typer.Option(
        Isolation.process, "--isolation", help="Each cell in its own process, or inline."
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="Torch CPU threads per cell (default: torch's, or the cores shared among --jobs).",
    ),
    executor: ExecutorChoice = typer.Option(
        None, "--executor", help="Where cells run (default: the suite's executor.kind, local)."
    ),
    gpus: str = typer.Option(
        None, "--gpus", help="local: GPUs for one cell each at a time, e.g. 0,1,2,3 (default all)."
    ),
    cells_per_gpu: int = typer.Option(
        None, "--cells-per-gpu", min=1, help="local: cells sharing one GPU (rows say so)."
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="ray: cluster address host:port, or auto."
    ),
    ray_max_retries: int = typer.Option(
        None, "--ray-max-retries", min=0, help="ray: re-runs of a cell whose node died."
    ),
    slurm_partition: str = typer.Option(None, "--slurm-partition", help="slurm: partition."),
    slurm_time: int = typer.Option(
        None, "--slurm-time", min=1, help="slurm: time limit per cell, minutes."
    ),
    slurm_array_parallelism: int = typer.Option(
        None, "--slurm-array-parallelism", min=1, help="slurm: cells of an array running at once."
    ),
    wait: bool = typer.Option(
        None, "--wait/--no-wait", help="slurm: wait for the jobs (no-wait: `memcomp status` later)."
    ),
    no_size_check: bool = typer.Option(
        False, "--no-size-check", help="Run cells estimated too big to finish or fit."
    ),
) -> None:
    """Expand a suite into cells, meta-train each, and write results.

    Results go to OUT/<suite>/<timestamp>/ (runs.csv, curves.csv, episodes.csv, manifest.json).

    Examples:

      memcomp run suites/quickstart.yaml

      memcomp run suites/paper-memory.yaml --device cuda --only 'mrml*'

      memcomp run suites/quickstart.yaml --dry-run

      memcomp run suites/quickstart.yaml --resume results/quickstart/20261127-101500

      memcomp run suites/paper-memory.yaml --jobs 2 --memory-limit 8000

      memcomp run suites/paper-accuracy.yaml --device cuda --gpus 0,1,2,3

      memcomp run suites/paper-accuracy.yaml --device cuda --executor ray --ray-address auto

      memcomp run suites/paper-accuracy.yaml --device cuda --executor slurm --no-wait
    """
    where = {
        "kind": executor.value if executor else None, "gpus": gpus,
        "cells_per_gpu": cells_per_gpu, "ray.address": ray_address,
        "ray.max_retries": ray_max_retries, "slurm.partition": slurm_partition,
        "slurm.time_min": slurm_time, "slurm.array_parallelism": slurm_array_parallelism,
        "slurm.wait": wait,
    }  # fmt: skip
    code = run_suite_command(
        suite, out, device.value if device else None, only, dry_run, console,
        resume=resume, jobs=jobs, memory_limit=memory_limit, isolation=isolation.value,
        threads=threads, executor=where, size_check=not no_size_check,
    )  # fmt: skip
    raise typer.Exit(code)


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
    executor: dict | None = None,
    size_check: bool = True,
) -> int:
    """Validate, preflight, expand, run; returns the exit code.

    0: every cell ok; 1: some cell did not finish ok (oom, diverged, error); 130: interrupted.
    Bad input raises :class:`~memcomp.errors.InputError` (exit 2) before anything is written.
    """
    from memcomp.exec.api import open_results, plan_run
    from memcomp.exec.schedule import DiskFull, Interrupted, is_disk_full, run_cells

    run = plan_run(
        suite_path, out, device=device_opt, only=only, resume=resume, jobs=jobs,
        memory_limit=memory_limit, isolation=isolation, threads=threads, executor=executor,
        size_check=size_check,
    )  # fmt: skip
    suite, cells, todo, done, device = run.suite, run.cells, run.todo, run.done, run.device
    if dry_run:
        console.print(cells_table(todo, f"suite {suite.name}: {len(todo)} cells to run (dry run)"))
        if done:
            console.print(f"{len(done)} cells already done in {run.resume_dir}")
        return 0
    try:
        results = open_results(run)
    except OSError as e:
        if not is_disk_full(e):
            raise
        console.print(f"[red]error[/]: no space left on device at {out}: nothing was written "
                      "(free some space and run again)", highlight=False)  # fmt: skip
        return 1
    for note in run.notes:
        prefix = "" if note.startswith("resuming ") else "[yellow]note[/]: "
        console.print(prefix + note, highlight=False)
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
    where = run.options.executor
    if where is not None and where.kind != "local":
        extra += [f"--executor={where.kind}"]
        extra += [f"--ray-address={where.ray.address}"] if where.kind == "ray" else []
    how = resume_command(suite_path, results.path, extra)
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        ) as p:  # fmt: skip
            rp = RichProgress(p, len(todo))
            outcomes = run_cells(todo, results, device, rp, options=run.options)
    except DiskFull as e:
        if e.outcomes:
            console.print(summary_table(e.outcomes))
        console.print(
            f"[red]error[/]: {e} ({e.detail}); {len(e.outcomes) + len(done)} of {len(cells)} "
            f"cells are saved in {results.path}; {len(e.unfinished)} not finished.\n"
            f"free some space, then resume with: {how}",
            highlight=False,
        )
        return 1
    except Interrupted as e:
        if e.outcomes:
            console.print(summary_table(e.outcomes))
        console.print(
            f"[yellow]interrupted[/]: {len(e.outcomes) + len(done)} of {len(cells)} cells are "
            f"saved in {results.path}; {len(e.unfinished)} not finished.\nresume with: {how}",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    if where is not None and where.kind == "slurm" and not where.slurm.wait:
        console.print(f"submitted {len(todo)} cells as SLURM jobs; they write into {results.path}"
                      f"\nfollow with: memcomp status {results.path}", highlight=False)  # fmt: skip
        return 0
    console.print(summary_table(outcomes))
    if where is not None and where.kind != "local" and outcomes:
        from memcomp.exec.remote import node_summary

        console.print(node_summary([o.row for o in outcomes]), highlight=False)
    failed = [o for o in outcomes if not o.ok]
    console.print(f"results: {results.path}")
    console.print(f"next: memcomp report {results.path}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(outcomes)} cells did not finish ok[/] "
                      f"(re-run them with: {how})", highlight=False)  # fmt: skip
        return 1
    return 0
