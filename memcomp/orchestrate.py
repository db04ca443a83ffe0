"""Run a list of cells into one results folder (suite -> cells -> runner -> store).

Cells run in child processes by default (:mod:`memcomp.isolation`), one at a time or ``jobs`` at
once, or in this process (``isolation="inline"``). Each finished cell is written before anything
else happens, so a killed run loses at most the cells in flight; ``runs.csv`` is the commit point
that resume reads. Ctrl-C (or SIGTERM) stops children and raises :class:`Interrupted`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Protocol

import torch

import memcomp
from memcomp.config.cells import Cell
from memcomp.errors import InputError
from memcomp.isolation import (
    ChildCell,
    exit_description,
    finish_child,
    plugin_names,
    sigterm_as_interrupt,
    start_child,
    stop_children,
)
from memcomp.runner import CellOutcome, base_row, device_name, run_cell
from memcomp.store import ResultsDir, atomic_write_text

ISOLATION_MODES = ("process", "inline")


def git_commit() -> str | None:
    """The memcomp checkout's commit, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(memcomp.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves to ``root`` or somewhere below it."""
    return path.resolve().is_relative_to(root.resolve())


def new_results_dir(root: Path, suite_name: str) -> ResultsDir:
    """``root/<suite>/<UTC timestamp>``; never reuses an existing folder, never leaves ``root``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = root / suite_name / stamp
    if not inside(base, root) or Path(suite_name).name != suite_name:
        raise InputError(f"suite name {suite_name!r} would write outside {root}")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return ResultsDir(path)


def create_results_dir(results: ResultsDir, info: dict[str, Any]) -> None:
    """Create ``results`` with its manifest in one rename: it never exists without a manifest."""
    tmp = results.path.with_name(f".{results.path.name}.tmp")
    tmp.mkdir(parents=True)
    ResultsDir(tmp).write_manifest(info)
    tmp.rename(results.path)


def manifest(
    suite_name: str,
    suite_text: str,
    device: torch.device,
    cells: Sequence[Cell],
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Self-description of a results folder: what produced it, where, with what."""
    return {
        "suite": suite_name,
        "suite_text": suite_text,
        "memcomp_version": memcomp.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device.type,
        "device_name": device_name(device),
        "cuda_version": torch.version.cuda,
        "git_commit": git_commit(),
        "started_at": _now(),
        "options": (options or RunOptions()).as_dict(),
        "cells": {c.id: c.config() for c in cells},
    }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- resume


def find_resume_dir(path: Path) -> Path:
    """``path`` itself when it holds a manifest, else its newest run subfolder that does."""
    if (path / "manifest.json").exists() or not path.is_dir():
        return path
    runs = sorted(p.parent for p in path.glob("*/manifest.json") if not p.parent.name[0] == ".")
    return runs[-1] if runs else path


def resume_problem(path: Path, suite_name: str) -> str | None:
    """Why ``path`` cannot be resumed for suite ``suite_name`` (None when it can)."""
    if not path.exists():
        return f"{path} does not exist (pass a folder written by `memcomp run`)"
    if not path.is_dir():
        return f"{path} is not a folder"
    rd = ResultsDir(path)
    if not rd.manifest_json.exists():
        return f"{path} has no manifest.json: not a memcomp results folder; refusing to write there"
    try:
        found = rd.manifest().get("suite")
    except (OSError, ValueError) as e:
        return f"{rd.manifest_json} is unreadable ({e}); refusing to write there"
    if found != suite_name:
        return (
            f"{path} holds results of suite {found!r}, not {suite_name!r}; "
            "it is never overwritten: resume a folder of this suite or omit --resume"
        )
    return None


def completed_ids(results: ResultsDir) -> set[str]:
    """Cell ids with a row of status ``ok`` in ``results``."""
    runs = results.runs()
    if not len(runs) or "status" not in runs.columns:
        return set()
    return set(runs.loc[runs["status"] == "ok", "cell_id"].astype(str))


def clean_temp_files(results: ResultsDir) -> None:
    """Remove temporary files left by a write that a kill interrupted."""
    for sub in (results.path, results.path / "checkpoints"):
        for tmp in sub.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def resume_manifest(
    results: ResultsDir, new: dict[str, Any], cells: Sequence[Cell]
) -> dict[str, Any]:
    """The folder's manifest with this session recorded and the current cells added."""
    old = results.manifest()
    sessions = list(old.get("resumes", []))
    sessions.append(
        {
            "resumed_at": new["started_at"],
            "memcomp_version": new["memcomp_version"],
            "torch_version": new["torch_version"],
            "device": new["device"],
            "device_name": new["device_name"],
            "git_commit": new["git_commit"],
            "options": new["options"],
            "suite_sha256": hashlib.sha256(new["suite_text"].encode()).hexdigest(),
        }
    )
    return {
        **old,
        "resumes": sessions,
        "suite_text": new["suite_text"] or old.get("suite_text", ""),
        "cells": {**old.get("cells", {}), **{c.id: c.config() for c in cells}},
    }


# ----------------------------------------------------------------------------- running


@dataclass
class RunOptions:
    """How cells are run: ``isolation`` process|inline, ``jobs`` at once, a GPU memory cap."""

    isolation: str = "process"
    jobs: int = 1
    memory_limit_mb: float | None = None
    memory_source: str = "auto"
    threads: int | None = None

    def cell_threads(self) -> int | None:
        """Torch CPU threads per cell: ``threads``, else the cores shared among ``jobs`` cells
        (None: torch's default) so that parallel cells do not oversubscribe the CPU."""
        if self.threads is not None:
            return self.threads
        if self.jobs > 1:
            return max(1, (os.cpu_count() or 1) // self.jobs)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "isolation": self.isolation,
            "jobs": self.jobs,
            "memory_limit_mb": self.memory_limit_mb,
            "memory_source": self.memory_source,
            "threads": self.threads,
        }


class SuiteProgress(Protocol):
    """What the orchestrator reports (the CLI draws it); cells may run concurrently."""

    def cell_started(self, cell: Cell, iterations: int) -> None: ...
    def cell_iteration(self, cell: Cell, iteration: int, val_acc: float | None) -> None: ...
    def cell_done(self, outcome: CellOutcome) -> None: ...


class Interrupted(Exception):
    """Ctrl-C/SIGTERM stopped the suite; ``outcomes`` were saved, ``unfinished`` were not."""

    def __init__(self, outcomes: list[CellOutcome], unfinished: list[Cell]) -> None:
        super().__init__(f"interrupted after {len(outcomes)} cells")
        self.outcomes = outcomes
        self.unfinished = unfinished


class _BoundProgress:
    """The runner's per-cell progress protocol on top of a :class:`SuiteProgress`."""

    def __init__(self, progress: SuiteProgress, cell: Cell) -> None:
        self.progress, self.cell = progress, cell

    def cell_started(self, cell: Cell, iterations: int) -> None:
        self.progress.cell_started(cell, iterations)

    def iteration_done(self, iteration: int, val_acc: float | None) -> None:
        self.progress.cell_iteration(self.cell, iteration, val_acc)


def checkpoint_path(results: ResultsDir, cell: Cell) -> Path | None:
    """Where ``cell`` checkpoints (None when its ``train.checkpoint_every`` is unset)."""
    if cell.train.checkpoint_every is None:
        return None
    return results.path / "checkpoints" / f"{cell.id}.pt"


def run_cells(
    cells: Sequence[Cell],
    results: ResultsDir,
    device: torch.device,
    progress: SuiteProgress | None = None,
    on_done: Callable[[CellOutcome], None] | None = None,
    options: RunOptions | None = None,
) -> list[CellOutcome]:
    """Run ``cells``; each is written as soon as it finishes. Outcomes come back in cell order.

    Raises :class:`Interrupted` on Ctrl-C/SIGTERM after stopping running cells.
    """
    opts = options or RunOptions()
    if opts.isolation not in ISOLATION_MODES:
        raise InputError(f"isolation must be one of {ISOLATION_MODES} (got {opts.isolation!r})")
    done: dict[int, CellOutcome] = {}

    def record(index: int, outcome: CellOutcome, log: str = "") -> None:
        _save(results, cells[index], outcome, log)
        done[index] = outcome
        if progress:
            progress.cell_done(outcome)
        if on_done:
            on_done(outcome)

    with sigterm_as_interrupt():
        try:
            if opts.isolation == "inline":
                _run_inline(cells, device, progress, opts, results, record)
            else:
                _run_processes(cells, device, progress, opts, results, record)
        except KeyboardInterrupt:
            raise Interrupted(
                [done[i] for i in sorted(done)],
                [c for i, c in enumerate(cells) if i not in done],
            ) from None
    return [done[i] for i in sorted(done)]


def _save(results: ResultsDir, cell: Cell, outcome: CellOutcome, log: str) -> None:
    """Write a finished cell; keep a failed cell's stderr as ``logs/<id>.log``."""
    results.append(outcome.row, outcome.curve, outcome.episodes)
    if log.strip() and not outcome.ok:
        atomic_write_text(results.path / "logs" / f"{cell.id}.log", log)
    ckpt = checkpoint_path(results, cell)
    if ckpt is not None and outcome.ok:
        ckpt.unlink(missing_ok=True)


def _run_inline(
    cells: Sequence[Cell],
    device: torch.device,
    progress: SuiteProgress | None,
    opts: RunOptions,
    results: ResultsDir,
    record: Callable[..., None],
) -> None:
    from memcomp.isolation import apply_memory_limit

    apply_memory_limit(device, opts.memory_limit_mb)
    threads, before = opts.cell_threads(), torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for i, cell in enumerate(cells):
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            bound = _BoundProgress(progress, cell) if progress else None
            outcome = run_cell(
                cell, device, bound, opts.memory_source, checkpoint=checkpoint_path(results, cell)
            )
            record(i, outcome)
    finally:
        torch.set_num_threads(before)  # inline cells share this process: leave it as it was


def _run_processes(
    cells: Sequence[Cell],
    device: torch.device,
    progress: SuiteProgress | None,
    opts: RunOptions,
    results: ResultsDir,
    record: Callable[..., None],
) -> None:
    events: Queue[tuple[int, str, Any]] = Queue()
    pending = list(range(len(cells)))[::-1]
    running: dict[int, ChildCell] = {}
    base = {
        "device": str(device),
        "memory_limit_mb": opts.memory_limit_mb,
        "memory_source": opts.memory_source,
        "plugins": plugin_names(),
        "threads": opts.cell_threads(),
    }
    try:
        while pending or running:
            while pending and len(running) < max(1, opts.jobs):
                i = pending.pop()
                ckpt = checkpoint_path(results, cells[i])
                request = {**base, "checkpoint": str(ckpt) if ckpt else None}
                running[i] = start_child(i, cells[i], request, events)
            try:
                i, kind, data = events.get(timeout=1.0)
            except Empty:
                continue
            child = running.get(i)
            if child is None:
                continue
            if kind == "msg":
                _on_message(child, data, progress)
                continue
            code = finish_child(child)
            del running[i]
            record(i, _child_outcome(child, code, device), child.stderr_text())
    except BaseException:
        stop_children(list(running.values()))
        raise


def _on_message(child: ChildCell, msg: dict[str, Any], progress: SuiteProgress | None) -> None:
    event = msg.get("event")
    if event == "done":
        child.done = msg
    elif progress is None:
        return
    elif event == "started":
        progress.cell_started(child.cell, int(msg["iterations"]))
    elif event == "iter":
        progress.cell_iteration(child.cell, int(msg["it"]), msg.get("val"))


def _child_outcome(child: ChildCell, code: int | None, device: torch.device) -> CellOutcome:
    """The child's reported outcome, or an error row describing how it died."""
    if child.done is not None:
        d = child.done
        return CellOutcome(d["row"], d.get("curve", []), d.get("episodes", []))
    row = base_row(child.cell, device)
    lines = [ln for ln in child.stderr_text().splitlines() if ln.strip()]
    last = f": {lines[-1].strip()[:300]}" if lines else ""
    row.update(
        status="error",
        error=f"cell process {exit_description(code)}{last}",
        exit_code=code,
        finished_at=_now(),
    )
    return CellOutcome(row)


def stale_ids(results: ResultsDir, cells: Sequence[Cell]) -> list[str]:
    """Cell ids with rows in ``results`` that are not cells of the current suite."""
    runs = results.runs()
    if not len(runs):
        return []
    current = {c.id for c in cells}
    return sorted(set(runs["cell_id"].astype(str)) - current)
