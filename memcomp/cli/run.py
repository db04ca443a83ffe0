"""``memcomp run``: the run options as one object, the run through the same API as
:func:`memcomp.run_suite`, what it prints (plan, progress, summary, how to resume), exit code."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import cells_table, esc, shell_arg
from memcomp.cli.options import DeviceChoice, Isolation
from memcomp.cli.progress import summary_table
from memcomp.config.run_options import RunOptions

EXIT_INTERRUPTED = 130


@app.command()
@handle_errors
def run(
    ctx: typer.Context,
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
    executor: str = typer.Option(
        None,
        "--executor",
        help="Where cells run: local, ray, slurm or a plugin's executor "
        "(default: the suite's executor.kind, local).",
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
    parent = ctx.parent.params if ctx.parent is not None else {}
    options = RunOptions.of(
        device=device.value if device else None, only=only, jobs=jobs,
        memory_limit_mb=memory_limit, isolation=isolation.value, threads=threads,
        executor=executor, gpus=gpus, cells_per_gpu=cells_per_gpu, ray_address=ray_address,
        ray_max_retries=ray_max_retries, slurm_partition=slurm_partition, slurm_time=slurm_time,
        slurm_array_parallelism=slurm_array_parallelism, wait=wait,
        size_check=not no_size_check, plugins=tuple(parent.get("plugin") or ()),
    )  # fmt: skip
    raise typer.Exit(run_command(suite, out, options, console, resume=resume, dry_run=dry_run))


def run_command(
    suite_path: Path,
    out: Path,
    options: RunOptions,
    console: Console,
    resume: Path | None = None,
    dry_run: bool = False,
) -> int:
    """Plan and run (or, ``dry_run``, list) a suite's cells; returns the exit code.

    0: every cell ok; 1: some cell did not finish ok (oom, diverged, error) or the disk is full;
    130: interrupted. Bad input raises :class:`~memcomp.errors.InputError` (exit 2) before
    anything is written.
    """
    from memcomp.cli.run_console import ConsoleRun
    from memcomp.exec.api import DiskFull, Interrupted, plan_run, run_suite
    from memcomp.exec.executor import executor_name

    if dry_run:
        run = plan_run(suite_path, out, options, resume=resume)
        title = f"suite {run.suite.name}: {len(run.todo)} cells to run (dry run)"
        console.print(cells_table(run.todo, title))
        if run.done:
            console.print(f"{len(run.done)} cells already done in {esc(run.resume_dir)}")
        return 0
    shown = ConsoleRun(console)
    try:
        result = run_suite(suite_path, out, shown, options=options, resume=resume)
    except (DiskFull, Interrupted) as stop:
        shown.close()
        if stop.outcomes:
            console.print(summary_table(stop.outcomes))
        if isinstance(stop, Interrupted):
            what = esc(str(stop).removeprefix("interrupted: "))
            console.print(f"[yellow]interrupted[/]: {what}", highlight=False)
            return EXIT_INTERRUPTED
        console.print(f"[red]error[/]: {esc(stop)}", highlight=False)
        return 1
    finally:
        shown.close()
    run, outcomes = result.run, result.outcomes
    folder = esc(result.folder)
    if run.executor.detached():
        kind = executor_name(run.options)
        console.print(f"submitted {len(run.todo)} cells ({kind}); they write into {folder}"
                      f"\nfollow with: memcomp status {shell_arg(result.folder)}",
                      highlight=False)  # fmt: skip
        return 0
    console.print(summary_table(outcomes))
    where = run.executor.summary([o.row for o in outcomes])
    if where:
        console.print(esc(where), highlight=False)
    failed = [o for o in outcomes if not o.ok]
    console.print(f"results: {folder}", highlight=False, soft_wrap=True)
    hint = f"next: memcomp report {shell_arg(result.folder)}"  # a command to copy: shell-quoted
    console.print(hint, highlight=False, soft_wrap=True)
    if failed:
        again = esc(run.resume_command())
        console.print(f"[red]{len(failed)} of {len(outcomes)} cells did not finish ok[/] "
                      f"(re-run them with: {again})", highlight=False)  # fmt: skip
        return 1
    return 0
