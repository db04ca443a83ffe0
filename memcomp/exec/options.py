"""What every scheduler shares: run options, the progress protocol, checkpoint locations."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from memcomp.config.cells import Cell
from memcomp.engine import CellOutcome, DataCache
from memcomp.fsutil import atomic_write_text
from memcomp.results.store import ResultsDir


class Isolation(str, Enum):
    """How cells run: each in its own process, or inline in this one."""

    process = "process"
    inline = "inline"


ISOLATION_MODES = tuple(m.value for m in Isolation)


@dataclass
class RunOptions:
    """How cells are run: ``isolation`` process|inline, ``jobs`` at once, a GPU memory cap."""

    isolation: str = "process"
    jobs: int = 1
    memory_limit_mb: float | None = None
    memory_source: str = "auto"
    threads: int | None = None
    datasets: DataCache | None = None  # inline runs: datasets already loaded (e.g. by preflight)
    executor: Any = None  # memcomp.exec.executor_options.ExecutorOptions (None: local)
    gpu_slots: Any = None  # memcomp.exec.gpus.GpuSlots: pin each cell child to one GPU

    def slots(self) -> int:
        """Cells at once: one per GPU slot when pinning, else ``jobs``."""
        return self.gpu_slots.capacity if self.gpu_slots is not None else max(1, self.jobs)

    def cell_threads(self) -> int | None:
        """Torch CPU threads per cell: ``threads``, else the cores shared among ``jobs`` cells
        (None: torch's default) so that parallel cells do not oversubscribe the CPU."""
        if self.threads is not None:
            return self.threads
        if self.slots() > 1:
            return max(1, (os.cpu_count() or 1) // self.slots())
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "isolation": str(Isolation(self.isolation).value),
            "jobs": self.jobs,
            "memory_limit_mb": self.memory_limit_mb,
            "memory_source": self.memory_source,
            "threads": self.threads,
            "executor": self.executor.model_dump() if self.executor is not None else None,
            "gpus": self.gpu_slots.gpus if self.gpu_slots is not None else None,
            "cells_per_gpu": self.gpu_slots.per_gpu if self.gpu_slots is not None else None,
        }


class SuiteProgress(Protocol):
    """What the orchestrator reports (the CLI draws it); cells may run concurrently."""

    def cell_started(self, cell: Cell, iterations: int) -> None: ...
    def cell_iteration(self, cell: Cell, iteration: int, val_acc: float | None) -> None: ...
    def cell_done(self, outcome: CellOutcome) -> None: ...


class BoundProgress:
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


def save_outcome(results: ResultsDir, cell: Cell, outcome: CellOutcome, log: str) -> None:
    """Write a finished cell; keep a failed cell's stderr as ``logs/<id>.log``."""
    results.append(outcome.row, outcome.curve, outcome.episodes)
    if log.strip() and not outcome.ok:
        atomic_write_text(results.path / "logs" / f"{cell.id}.log", log)
    ckpt = checkpoint_path(results, cell)
    if ckpt is not None and outcome.ok:
        ckpt.unlink(missing_ok=True)
