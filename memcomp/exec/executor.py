"""THE executor interface: where and how a run's cells run (``memcomp run --executor NAME``).

Every executor (``local``: inline or in child processes; ``ray``; ``slurm``; a plugin's) is an
:class:`Executor` registered in :data:`EXECUTORS` with its name, a one-line summary and its
options model (its section of the suite's ``executor:``). :func:`make_executor` is the one
dispatch point; :func:`memcomp.exec.schedule.run_cells` calls :meth:`Executor.run`, which runs
the cells and calls ``ctx.record(i, outcome, log)`` as each finishes and ``ctx.emit(event)``
for progress. Adding an executor is one module::

    @EXECUTORS.register("serial-reverse", "cells in reverse order, in this process", NoOptions)
    class SerialReverse(Executor):
        def run(self, cells, ctx):
            for i in reversed(range(len(cells))):
                ctx.record(i, run_cell(cells[i], ctx.device), "")

A cell whose process died or that an executor gave up on becomes the same error row
(:func:`error_outcome`, :func:`dead_child_outcome`) whichever executor ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memcomp.config.cells import Cell
from memcomp.config.executors import EXECUTORS, NoOptions
from memcomp.config.run_options import RunOptions
from memcomp.exec.progress import Emit

if TYPE_CHECKING:
    import torch

    from memcomp.engine import CellOutcome
    from memcomp.results.store import ResultsDir

__all__ = ["EXECUTORS", "Executor", "NoOptions", "RunContext", "dead_child_outcome",
           "error_outcome", "executor_name", "make_executor"]  # fmt: skip

Record = Callable[..., None]  # record(index, outcome, log=""): write a finished cell


@dataclass
class RunContext:
    """What an executor gets besides the cells: the device, the results folder, and the two
    callbacks (``record`` writes a finished cell by its index; ``emit`` reports progress)."""

    device: torch.device
    results: ResultsDir
    record: Record
    emit: Emit


class Executor:
    """Runs cells somewhere (see the module docstring). ``options`` are the run's options, the
    executor's section resolved (``options.executor_options.section(name)``)."""

    remote: ClassVar[bool] = False
    """Cells run on other machines: ``--device`` must say ``cpu`` or ``cuda`` (the driver
    cannot see the nodes' devices) and preflight checks their work, not this machine's memory."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def missing(self) -> str | None:
        """Why this executor cannot be used here (e.g. its package is not installed)."""
        return None

    def prepare(self, device: torch.device) -> RunOptions:
        """Resolve what depends on the run's device (e.g. GPU pinning) at plan time, before
        anything is written; a bad option raises :class:`~memcomp.errors.InputError`."""
        return self.options

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        """Run ``cells``: ``ctx.record(i, outcome, log)`` for each as it finishes."""
        raise NotImplementedError

    def detached(self) -> bool:
        """Whether cells go on after :meth:`run` returned (they write their own rows)."""
        return False

    def summary(self, rows: list[dict[str, Any]]) -> str | None:
        """A line about where the cells ran, shown after the summary table (None: nothing)."""
        return None


def executor_name(options: RunOptions) -> str:
    """The executor ``options`` ask for: the resolved section's kind, else ``--executor``."""
    if options.executor_options is not None:
        return options.executor_options.kind
    return options.executor or "local"


def make_executor(options: RunOptions) -> Executor:
    """The executor of ``options`` (THE dispatch point: the registry, nothing else)."""
    executor = EXECUTORS.get(executor_name(options)).factory(options)
    if not isinstance(executor, Executor):
        raise TypeError(f"executor {executor_name(options)!r} is not a memcomp Executor")
    return executor


def error_outcome(cell: Cell, device: Any, error: str, **columns: Any) -> CellOutcome:
    """An error row for ``cell`` (``columns`` added): a cell an executor could not finish."""
    from memcomp.engine import CellOutcome, base_row
    from memcomp.results.manifest import now

    row = base_row(cell, device)
    row.update(status="error", error=error, finished_at=now(), **columns)
    return CellOutcome(row)


def dead_child_outcome(cell: Cell, device: Any, how: str, log: str, code: int | None) -> Any:
    """THE row of a cell whose child process ended without reporting: ``how`` it ended (e.g.
    ``killed by signal SIGSEGV``), the last line of its log, its exit code."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    last = f": {lines[-1].strip()[:300]}" if lines else ""
    return error_outcome(cell, device, f"cell process {how}{last}", exit_code=code)
