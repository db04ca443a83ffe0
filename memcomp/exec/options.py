"""What every executor shares: the run options (one object, :class:`RunOptions`, from
:mod:`memcomp.config.run_options`), checkpoint locations, and how a finished cell is saved."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from memcomp.config.cells import Cell
from memcomp.config.run_options import RunOptions
from memcomp.engine import CellOutcome
from memcomp.fsutil import atomic_write_text
from memcomp.results.store import ResultsDir

__all__ = ["ISOLATION_MODES", "Isolation", "RunOptions", "checkpoint_path", "save_outcome"]


class Isolation(str, Enum):
    """How local cells run: each in its own process, or inline in this one."""

    process = "process"
    inline = "inline"


ISOLATION_MODES = tuple(m.value for m in Isolation)


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
