"""A run from a suite file: plan it (load, expand, preflight; nothing written), open its results
folder (new, or the one resumed), run its cells. ``memcomp run`` and :func:`run_suite` share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memcomp.config import Suite, expand, filter_cells, load_suite
from memcomp.config.cells import Cell
from memcomp.engine import CellOutcome, DataCache
from memcomp.errors import InputError
from memcomp.exec.child import load_plugins
from memcomp.exec.options import RunOptions, SuiteProgress
from memcomp.exec.plan import preflight
from memcomp.exec.schedule import run_cells, runtime_info
from memcomp.results.manifest import create_results_dir, manifest, new_results_dir
from memcomp.results.resume import (
    clean_temp_files,
    completed_ids,
    resume_manifest,
    stale_ids,
    version_note,
)
from memcomp.results.store import ResultsDir


@dataclass
class PlannedRun:
    """A checked run: the suite, its cells, what is left to do, where results go."""

    suite: Suite
    all_cells: list[Cell]
    cells: list[Cell]
    todo: list[Cell]
    done: set[str]
    device: torch.device
    options: RunOptions
    out: Path
    resume_dir: Path | None
    results: ResultsDir | None = None
    notes: list[str] = field(default_factory=list)


def plan_run(
    suite_path: Path,
    out: Path = Path("results"),
    *,
    device: str | None = None,
    only: str | None = None,
    resume: Path | None = None,
    jobs: int = 1,
    memory_limit: float | None = None,
    isolation: str = "process",
    threads: int | None = None,
    executor: dict[str, Any] | None = None,
    size_check: bool = True,
) -> PlannedRun:
    """Load, expand and preflight; :class:`~memcomp.errors.InputError` (exit 2) lists every
    problem. Nothing is written. ``executor``: command-line overrides of the suite's
    ``executor:`` section (dotted keys, e.g. ``{"kind": "ray", "ray.address": "auto"}``).
    ``size_check=False``: run cells preflight estimates too big (on a cluster, whose machines
    this one does not know, only the work bound applies)."""
    if threads is not None and threads < 1:
        raise InputError(f"--threads: must be >= 1 (got {threads})")
    load_plugins()
    suite = load_suite(suite_path)
    all_cells = expand(suite)
    cells = all_cells
    if only:
        cells = filter_cells(cells, only)
        if not cells:
            raise InputError(f"--only {only!r} matches no cell of {suite_path}")
    from memcomp.exec.executor_options import plan_executor
    from memcomp.exec.gpus import local_gpu_slots

    overrides = executor or {}
    where, cluster_device = plan_executor(suite, overrides, device)
    datasets = DataCache()  # preflight loads into it; inline cells reuse it
    plan = preflight(
        suite, cells, device="cpu" if cluster_device else device, out=out, resume=resume,
        jobs=jobs, isolation=isolation, memory_limit_mb=memory_limit, datasets=datasets,
        size_check=size_check, size_memory=not cluster_device,
    )  # fmt: skip
    run_device = cluster_device or plan.device
    explicit = overrides.get("gpus") is not None or "gpus" in (suite.executor or {})
    slots = local_gpu_slots(where, run_device, isolation, jobs, explicit)
    done: set[str] = set()
    if plan.resume_dir is not None:
        done = completed_ids(ResultsDir(plan.resume_dir)) & {c.id for c in cells}
    options = RunOptions(
        isolation=isolation, jobs=jobs, memory_limit_mb=memory_limit, threads=threads,
        datasets=datasets if isolation == "inline" else None, executor=where, gpu_slots=slots,
    )  # fmt: skip
    todo = [c for c in cells if c.id not in done]
    return PlannedRun(
        suite, all_cells, cells, todo, done, run_device, options, out, plan.resume_dir
    )


def open_results(run: PlannedRun) -> ResultsDir:
    """Create the results folder (or record this session in the resumed one's manifest).

    Notes for the user (another memcomp version, another device, stale rows) go to ``run.notes``.
    """
    s, dev = run.suite, run.device
    info = manifest(s.name, s.source_text, runtime_info(dev), run.all_cells, run.options.as_dict())
    if run.resume_dir is None:
        run.results = create_results_dir(new_results_dir(run.out, s.name), info)
        return run.results
    results = run.results = ResultsDir(run.resume_dir)
    clean_temp_files(results)
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


def run_suite(
    suite_path: Path | str,
    out: Path | str = "results",
    progress: SuiteProgress | None = None,
    **options: object,
) -> tuple[Path, list[CellOutcome]]:
    """Run a suite file like ``memcomp run`` (keyword options as :func:`plan_run`); returns the
    results folder and the outcomes of the cells run."""
    run = plan_run(Path(suite_path), Path(out), **options)  # type: ignore[arg-type]
    results = open_results(run)
    return results.path, run_cells(run.todo, results, run.device, progress, options=run.options)
