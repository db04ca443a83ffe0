"""Run a list of cells into one results folder (suite -> cells -> engine -> results).

The run's executor (:func:`memcomp.exec.executor.make_executor`: inline, child processes, Ray,
SLURM or a plugin's) runs the cells; each finished cell is written before anything else happens,
so a killed run loses at most the cells in flight; ``runs.csv`` is the commit point that resume
reads. Ctrl-C (or SIGTERM) stops the cells and raises :class:`Interrupted`; a full disk stops the
run cleanly with :class:`DiskFull`. Both keep every row written and, raised by
:func:`memcomp.exec.api.execute`, say how to resume.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from memcomp.config.cells import Cell
from memcomp.engine import CellOutcome
from memcomp.errors import MemcompError
from memcomp.exec.executor import Executor, RunContext, make_executor
from memcomp.exec.options import (
    ISOLATION_MODES,
    Isolation,
    RunOptions,
    checkpoint_path,
    save_outcome,
)
from memcomp.exec.progress import Emit, ProgressEvent, as_emit
from memcomp.results.store import ResultsDir

__all__ = [
    "ISOLATION_MODES", "DiskFull", "Interrupted", "Isolation", "RunOptions", "checkpoint_path",
    "is_disk_full", "run_cells", "runtime_info",
]  # fmt: skip


class _Stopped:
    """What a stopped run kept: ``outcomes`` saved (in cell order), ``unfinished`` cells, and,
    once :func:`memcomp.exec.api.execute` knows them, the folder, the cells done before this
    session (``earlier``), the suite's cell count and the command that resumes the run."""

    outcomes: list[CellOutcome]
    unfinished: list[Cell]
    folder: Path | None = None
    resume: str | None = None
    earlier: int = 0
    total: int | None = None

    def saved(self) -> str:
        total = self.total if self.total is not None else len(self.outcomes) + len(self.unfinished)
        where = f" in {self.folder}" if self.folder is not None else ""
        return (f"{len(self.outcomes) + self.earlier} of {total} cells are saved{where}; "
                f"{len(self.unfinished)} not finished")  # fmt: skip


class Interrupted(_Stopped, KeyboardInterrupt):
    """Ctrl-C/SIGTERM stopped the run; it is still a KeyboardInterrupt to whoever does not ask."""

    def __init__(self, outcomes: list[CellOutcome], unfinished: list[Cell]) -> None:
        super().__init__(f"interrupted after {len(outcomes)} cells")
        self.outcomes, self.unfinished = outcomes, unfinished

    def __str__(self) -> str:
        text = f"interrupted: {self.saved()}"
        return text + (f".\nresume with: {self.resume}" if self.resume else "")


class DiskFull(_Stopped, MemcompError):
    """The results folder's disk is full (exit 1): what was saved stays valid and whole."""

    def __init__(
        self, path: Path, outcomes: list[CellOutcome], unfinished: list[Cell], detail: str
    ) -> None:
        super().__init__(f"no space left on device at {path}")
        self.path, self.outcomes, self.unfinished, self.detail = path, outcomes, unfinished, detail
        self.nothing_written = False

    def __str__(self) -> str:
        head = f"no space left on device at {self.path} ({self.detail})"
        if self.nothing_written:
            return f"{head}: nothing was written (free some space and run again)"
        text = f"{head}; {self.saved()}."
        return text + (f"\nfree some space, then resume with: {self.resume}" if self.resume else "")


def run_cells(
    cells: Sequence[Cell],
    results: ResultsDir,
    device: torch.device,
    progress: Emit | None = None,
    on_done: Callable[[CellOutcome], None] | None = None,
    options: RunOptions | None = None,
    executor: Executor | None = None,
) -> list[CellOutcome]:
    """Run ``cells`` with ``executor`` (default: the one ``options`` name); each is written as
    soon as it finishes, and reported as a ``done`` event. Outcomes come back in cell order.

    Raises :class:`Interrupted` on Ctrl-C/SIGTERM after stopping running cells, and
    :class:`DiskFull` when the results folder's disk fills up (what was saved stays valid).
    """
    executor = executor or make_executor(options or RunOptions())
    emit = as_emit(progress)
    done: dict[int, CellOutcome] = {}

    def record(index: int, outcome: CellOutcome, log: str = "") -> None:
        save_outcome(results, cells[index], outcome, log)
        done[index] = outcome
        emit(ProgressEvent("done", cells[index], outcome=outcome))
        if on_done:
            on_done(outcome)

    with sigterm_as_interrupt():
        try:
            executor.run(cells, RunContext(device, results, record, emit))
        except KeyboardInterrupt:
            raise Interrupted(*_split(done, cells)) from None
        except OSError as e:
            if not is_disk_full(e):
                raise
            from memcomp.results.resume import clean_temp_files

            clean_temp_files(results)
            raise DiskFull(results.path, *_split(done, cells), f"{type(e).__name__}: {e}") from None
    return _split(done, cells)[0]


def _split(
    done: dict[int, CellOutcome], cells: Sequence[Cell]
) -> tuple[list[CellOutcome], list[Cell]]:
    """Outcomes of the finished cells (in cell order) and the cells not finished."""
    return [done[i] for i in sorted(done)], [c for i, c in enumerate(cells) if i not in done]


def is_disk_full(e: BaseException) -> bool:
    """An ``OSError`` (or one it was raised from) saying the disk or quota is full."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM (e.g. from a batch scheduler) stops the suite like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def runtime_info(device: torch.device) -> dict[str, Any]:
    """What the manifest records about where cells run."""
    from memcomp.measure.device import device_name

    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
    }
