"""A run from a suite file, the same for ``memcomp run`` and the Python API (:func:`run_suite`):
plan it (load, expand, pick the executor, preflight; nothing written), open its results folder
(new, or the one resumed), run its cells. A Ctrl-C (:class:`~memcomp.exec.schedule.Interrupted`)
or a full disk (:class:`~memcomp.exec.schedule.DiskFull`) keeps every row written and says how to
resume: the command is built from the options the manifest recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memcomp.config import Suite, filter_cells, load_suite
from memcomp.config.cells import Cell
from memcomp.config.run_options import RunOptions
from memcomp.engine import CellOutcome, DataCache
from memcomp.errors import InputError
from memcomp.exec.child import load_plugins
from memcomp.exec.executor import Executor
from memcomp.exec.executor_options import plan_executor
from memcomp.exec.plan import preflight
from memcomp.exec.progress import Emit, RunProgress
from memcomp.exec.schedule import DiskFull, Interrupted, is_disk_full, run_cells, runtime_info
from memcomp.results.manifest import create_results_dir, manifest, new_results_dir
from memcomp.results.resume import (
    clean_temp_files,
    completed_ids,
    resume_command,
    resume_manifest,
    stale_ids,
    version_note,
)
from memcomp.results.store import ResultsDir

__all__ = ["DiskFull", "Interrupted", "PlannedRun", "RunResult", "execute", "open_results",
           "plan_run", "run_suite"]  # fmt: skip


@dataclass
class PlannedRun:
    """A checked run: the suite, its cells, what is left to do, its executor and options (one
    object, resolved), where results go; once opened, the results folder and what the manifest
    recorded of the options (``recorded``)."""

    suite_path: Path
    suite: Suite
    all_cells: list[Cell]
    cells: list[Cell]
    todo: list[Cell]
    done: set[str]
    device: torch.device
    options: RunOptions
    executor: Executor
    out: Path
    resume_dir: Path | None
    results: ResultsDir | None = None
    recorded: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def resume_command(self) -> str:
        """The command that resumes this run's folder, from the options the manifest recorded."""
        assert self.results is not None, "open_results first"
        recorded = self.recorded if self.recorded is not None else self.options.recorded()
        return resume_command(self.suite_path, self.results.path, recorded)


@dataclass
class RunResult:
    """What :func:`run_suite` returns; unpacks as ``(folder, outcomes)``."""

    folder: Path
    outcomes: list[CellOutcome]
    run: PlannedRun

    def __iter__(self) -> Iterator[Any]:
        yield self.folder
        yield self.outcomes


def _options(options: RunOptions | None, values: dict[str, Any]) -> RunOptions:
    if options is None:
        return RunOptions.of(**values)
    if values:
        return RunOptions.of(**{**options.model_dump(exclude_defaults=True), **values})
    return options


def plan_run(
    suite_path: Path | str,
    out: Path | str = Path("results"),
    options: RunOptions | None = None,
    *,
    resume: Path | str | None = None,
    **values: Any,
) -> PlannedRun:
    """Load, expand, pick the executor and preflight; :class:`~memcomp.errors.InputError`
    (exit 2) lists every problem. Nothing is written. ``values``: run options by name
    (:meth:`RunOptions.of`), over ``options``."""
    suite_path, out = Path(suite_path), Path(out)
    opts = _options(options, values)
    load_plugins()
    suite = load_suite(suite_path)
    all_cells = list(suite.cells)
    cells = all_cells
    if opts.only:
        cells = filter_cells(cells, opts.only)
        if not cells:
            raise InputError(f"--only {opts.only!r} matches no cell of {suite_path}")
    executor, remote_device = plan_executor(suite, opts)
    datasets = DataCache()  # preflight loads into it; inline cells reuse it
    o = executor.options
    plan = preflight(
        suite, cells, device="cpu" if executor.remote else o.device, out=out,
        resume=Path(resume) if resume is not None else None, jobs=o.jobs, isolation=o.isolation,
        memory_limit_mb=o.memory_limit_mb, datasets=datasets, size_check=o.size_check,
        size_memory=not executor.remote,
    )  # fmt: skip
    device = remote_device or plan.device
    executor.options = executor.prepare(device).model_copy(
        update={"datasets": datasets if o.isolation == "inline" else None}
    )
    done: set[str] = set()
    if plan.resume_dir is not None:
        done = completed_ids(ResultsDir(plan.resume_dir)) & {c.id for c in cells}
    todo = [c for c in cells if c.id not in done]
    return PlannedRun(
        suite_path, suite, all_cells, cells, todo, done, device, executor.options, executor, out,
        plan.resume_dir,
    )  # fmt: skip


def _execution(run: PlannedRun) -> dict[str, Any]:
    """How the run was resolved (the manifest's ``execution``): executor section, GPU pinning."""
    o = run.options
    slots = o.gpu_slots
    return {
        "executor": o.executor_options.model_dump(mode="json") if o.executor_options else None,
        "gpus": slots.gpus if slots is not None else None,
        "cells_per_gpu": slots.per_gpu if slots is not None else None,
        "memory_source": o.memory_source,
    }


def open_results(run: PlannedRun) -> ResultsDir:
    """Create the results folder (or record this session in the resumed one's manifest).

    Notes for the user (another memcomp version, another device, stale rows) go to
    ``run.notes``. A full disk is :class:`DiskFull` saying that nothing was written.
    """
    try:
        return _open(run)
    except OSError as e:
        if not is_disk_full(e):
            raise
        stop = DiskFull(run.resume_dir or run.out, [], list(run.todo), f"{type(e).__name__}: {e}")
        stop.nothing_written = True
        raise stop from None


def _open(run: PlannedRun) -> ResultsDir:
    s, dev = run.suite, run.device
    run.recorded = run.options.recorded()
    info = manifest(s.name, s.source_text, runtime_info(dev), run.all_cells, run.recorded)
    info["execution"] = _execution(run)
    if run.resume_dir is None:
        run.results = create_results_dir(new_results_dir(run.out, s.name), info)
        return run.results
    results = run.results = ResultsDir(run.resume_dir)
    clean_temp_files(results)
    run.notes += results.repair_torn_tails()  # its cell has no runs row: it is in run.todo
    note = version_note(results, info)
    if note:
        run.notes.append(f"{note} (recorded in the manifest)")
    old_device = results.manifest().get("device")
    if old_device and old_device != dev.type:
        run.notes.append(
            f"{results.path} was started on {old_device}, resuming on {dev.type}; "
            "rows record their device"
        )
    results.write_manifest(resume_manifest(results, info, run.all_cells))
    stale = stale_ids(results, run.all_cells)
    run.notes.append(
        f"resuming {results.path}: {len(run.done)} of {len(run.cells)} cells already done, "
        f"running {len(run.todo)}"
        + (f"; {len(stale)} rows of cells no longer in the suite are kept" if stale else "")
    )
    return results


def execute(run: PlannedRun, progress: RunProgress | Emit | None = None) -> list[CellOutcome]:
    """Open the run's folder (unless open) and run what is left; outcomes in cell order.

    ``progress`` gets ``run_started(run)`` (a :class:`RunProgress`) and every cell's event.
    :class:`Interrupted` (Ctrl-C, SIGTERM) and :class:`DiskFull` keep every row written; their
    message says how many cells are saved and gives the command that resumes the run.
    """
    results = run.results if run.results is not None else open_results(run)
    started = getattr(progress, "run_started", None)
    if started is not None:
        started(run)
    try:
        return run_cells(run.todo, results, run.device, progress, executor=run.executor)
    except (Interrupted, DiskFull) as stop:
        stop.folder, stop.earlier, stop.total = results.path, len(run.done), len(run.cells)
        stop.resume = run.resume_command()
        raise


def run_suite(
    suite_path: Path | str,
    out: Path | str = "results",
    progress: RunProgress | Emit | None = None,
    *,
    options: RunOptions | None = None,
    resume: Path | str | None = None,
    **values: Any,
) -> RunResult:
    """Run a suite file as ``memcomp run`` does; returns the results folder and the outcomes of
    the cells run (:class:`RunResult`, which unpacks as ``folder, outcomes``).

    Run options as a :class:`RunOptions` or by name (``isolation="inline"``, ``jobs=2``,
    ``device="cpu"``, ``executor={"kind": "ray", "ray.address": "auto"}``...). Bad input is an
    :class:`~memcomp.errors.InputError` before anything is written; Ctrl-C raises
    :class:`Interrupted` (a KeyboardInterrupt) and a full disk :class:`DiskFull`, both after
    keeping every finished cell, with ``.folder``, ``.outcomes``, ``.unfinished`` and
    ``.resume`` (the command that resumes the run).
    """
    run = plan_run(suite_path, out, options, resume=resume, **values)
    outcomes = execute(run, progress)
    assert run.results is not None
    return RunResult(run.results.path, outcomes, run)
