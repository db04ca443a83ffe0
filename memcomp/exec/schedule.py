"""Run a list of cells into one results folder (suite -> cells -> engine -> results).

Cells run in child processes by default (:mod:`memcomp.exec.processes`), one at a time or ``jobs``
at once, or in this process (:mod:`memcomp.exec.inline`). Each finished cell is written before
anything else happens, so a killed run loses at most the cells in flight; ``runs.csv`` is the
commit point that resume reads. Ctrl-C (or SIGTERM) stops children and raises
:class:`Interrupted`; a full disk stops the run cleanly with :class:`DiskFull`.
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
from memcomp.exec.inline import run_inline
from memcomp.exec.options import (
    ISOLATION_MODES,
    BoundProgress,
    Isolation,
    RunOptions,
    SuiteProgress,
    checkpoint_path,
    save_outcome,
)
from memcomp.exec.processes import run_processes
from memcomp.results.store import ResultsDir

__all__ = [
    "ISOLATION_MODES", "BoundProgress", "DiskFull", "Interrupted", "Isolation", "RunOptions",
    "SuiteProgress", "checkpoint_path", "is_disk_full", "run_cells", "runtime_info",
]  # fmt: skip


class Interrupted(Exception):
    """Ctrl-C/SIGTERM stopped the suite; ``outcomes`` were saved, ``unfinished`` were not."""

    def __init__(self, outcomes: list[CellOutcome], unfinished: list[Cell]) -> None:
        super().__init__(f"interrupted after {len(outcomes)} cells")
        self.outcomes = outcomes
        self.unfinished = unfinished


class DiskFull(Exception):
    """The results folder's disk is full: ``outcomes`` were saved, ``unfinished`` were not."""

    def __init__(
        self, path: Path, outcomes: list[CellOutcome], unfinished: list[Cell], detail: str
    ) -> None:
        super().__init__(f"no space left on device at {path}")
        self.path, self.outcomes, self.unfinished, self.detail = path, outcomes, unfinished, detail


def run_cells(
    cells: Sequence[Cell],
    results: ResultsDir,
    device: torch.device,
    progress: SuiteProgress | None = None,
    on_done: Callable[[CellOutcome], None] | None = None,
    options: RunOptions | None = None,
) -> list[CellOutcome]:
    """Run ``cells``; each is written as soon as it finishes. Outcomes come back in cell order.

    Raises :class:`Interrupted` on Ctrl-C/SIGTERM after stopping running cells, and
    :class:`DiskFull` when the results folder's disk fills up (what was saved stays valid).
    """
    opts = options or RunOptions()
    opts.isolation = Isolation(opts.isolation).value
    done: dict[int, CellOutcome] = {}

    def record(index: int, outcome: CellOutcome, log: str = "") -> None:
        save_outcome(results, cells[index], outcome, log)
        done[index] = outcome
        if progress:
            progress.cell_done(outcome)
        if on_done:
            on_done(outcome)

    with sigterm_as_interrupt():
        try:
            kind = opts.executor.kind if opts.executor is not None else "local"
            if kind == "ray":
                from memcomp.exec.ray_executor import run_ray_cells

                run_ray_cells(cells, device, progress, opts, results, record)
            elif kind == "slurm":
                from memcomp.exec.slurm_executor import run_slurm_cells

                run_slurm_cells(cells, device, progress, opts, results, record)
            elif opts.isolation == "inline":
                run_inline(cells, device, progress, opts, results, record)
            else:
                run_processes(cells, device, progress, opts, results, record)
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
