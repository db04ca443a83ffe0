"""THE progress event of a run: one type for every executor, in process or over a wire.

A cell reports ``started`` (its iterations), ``iteration`` (the iteration done, the last
validation accuracy) and ``done`` (its outcome, once written). Inline cells emit events directly;
a cell child sends :meth:`ProgressEvent.wire` lines that its parent (a local scheduler, a Ray
task's driver) turns back into events with :meth:`ProgressEvent.from_wire`, so whoever draws
progress (the CLI, a notebook) sees the same events whatever ran the cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from memcomp.config.cells import Cell

if TYPE_CHECKING:
    from memcomp.engine import CellOutcome
    from memcomp.exec.api import PlannedRun

Kind = Literal["started", "iteration", "done"]
KINDS: tuple[Kind, ...] = ("started", "iteration", "done")


@dataclass(frozen=True)
class ProgressEvent:
    """Something that happened to one ``cell`` (see the module docstring)."""

    kind: Kind
    cell: Cell
    iterations: int | None = None  # started: meta-iterations the cell will run
    iteration: int | None = None  # iteration: meta-iterations done
    val_acc: float | None = None  # iteration: the last validation accuracy, if any
    outcome: CellOutcome | None = None  # done

    def wire(self) -> dict[str, Any]:
        """A started/iteration event as the cell child's JSON line, without its cell (the
        receiver knows which cell): ``{"event": "started", "iterations": N}`` or
        ``{"event": "iter", "it": I, "val": ACC}``."""
        if self.kind == "started":
            return {"event": "started", "iterations": self.iterations}
        if self.kind == "iteration":
            return {"event": "iter", "it": self.iteration, "val": self.val_acc}
        raise ValueError("a done event travels as the cell's outcome, not as a progress line")

    @staticmethod
    def from_wire(cell: Cell, message: dict[str, Any]) -> ProgressEvent | None:
        """The event a :meth:`wire` line describes (None: not a progress line)."""
        kind = message.get("event")
        if kind == "started":
            return ProgressEvent("started", cell, iterations=int(message["iterations"]))
        if kind == "iter":
            return ProgressEvent("iteration", cell, iteration=int(message["it"]),
                                 val_acc=message.get("val"))  # fmt: skip
        return None


Emit = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """An :data:`Emit` that drops every event."""


class CellProgress:
    """The engine's per-cell progress hooks (:class:`memcomp.engine.Progress`) as events."""

    def __init__(self, emit: Emit, cell: Cell) -> None:
        self.emit, self.cell = emit, cell

    def cell_started(self, cell: Cell, iterations: int) -> None:
        self.emit(ProgressEvent("started", self.cell, iterations=iterations))

    def iteration_done(self, iteration: int, val_acc: float | None) -> None:
        self.emit(ProgressEvent("iteration", self.cell, iteration=iteration, val_acc=val_acc))


class RunProgress:
    """What a run tells whoever follows it (override what you need): :meth:`run_started` once
    its results folder is open, then every cell's :class:`ProgressEvent`."""

    def run_started(self, run: PlannedRun) -> None:
        """The run is planned and checked, its folder open (``run.results``, ``run.notes``)."""

    def __call__(self, event: ProgressEvent) -> None:
        """One cell's event."""


def as_emit(progress: RunProgress | Emit | None) -> Emit:
    """An :data:`Emit` for ``progress`` (a :class:`RunProgress`, a callable, or None)."""
    return no_progress if progress is None else progress
