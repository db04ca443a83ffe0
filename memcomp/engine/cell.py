"""Run one cell: build data, backbone and learner, meta-train, measure, evaluate.

Data flows one way: a :class:`~memcomp.config.Cell` goes in, a :class:`CellOutcome` (one results
row, the validation curve and per-episode test accuracies) comes out. Failures inside a cell
(out-of-memory, divergence, any other error) become a row with that status, not an exception.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memcomp.config.cells import Cell
from memcomp.engine.choose import choose_into
from memcomp.engine.compiling import compile_skip_reason
from memcomp.engine.row import base_row, one_line
from memcomp.engine.setup import CellSetup, DataCache, precision_plan, setup_cell
from memcomp.engine.train import (
    DivergedError,
    Progress,
    measure_into,
    measure_memory,
    train_and_test,
)
from memcomp.errors import InputError
from memcomp.measure.device import resolve_device
from memcomp.measure.memory import MemoryResult
from memcomp.measure.precision import precision_flags, unsupported

_MEASURE_DATASETS = DataCache()  # owned here: budget checks measure many cells of one dataset


@dataclass
class CellOutcome:
    row: dict[str, Any]
    curve: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Finished as intended: trained (``ok``) or declined by the learner (``skipped``)."""
        return self.row.get("status") in ("ok", "skipped")


def measure_cell_memory(
    cell: Cell,
    device: str = "cpu",
    iterations: int = 2,
    source: str = "auto",
    datasets: DataCache | None = None,
) -> MemoryResult:
    """Peak memory of ``cell``'s meta-iterations (used by ``memcomp check``); datasets are loaded
    once per process into the engine's own cache unless ``datasets`` is given."""
    datasets = datasets if datasets is not None else _MEASURE_DATASETS
    with precision_flags(precision_plan(cell)):
        return measure_memory(
            setup_cell(cell, resolve_device(device), datasets), iterations, source
        )


def skip_reason(cell: Cell) -> str | None:
    """The learner class's ``skip(cell)`` hook (optional): a reason to decline this cell, which
    becomes a ``status=skipped`` row (docs/extending.md)."""
    from memcomp.learners import LEARNERS

    hook = getattr(LEARNERS.get(cell.learner.name).factory, "skip", None)
    return hook(cell) if callable(hook) else None


def run_cell(
    cell: Cell,
    device: torch.device,
    progress: Progress | None = None,
    memory_source: str = "auto",
    on_setup: Callable[[CellSetup], None] | None = None,
    checkpoint: Path | None = None,
    datasets: DataCache | None = None,
) -> CellOutcome:
    """Meta-train and evaluate one cell; every failure is a row with a status.

    With ``checkpoint`` and ``cell.train.checkpoint_every``, training state is saved there every
    that many iterations and a run finding a checkpoint of the same cell continues from it.
    ``datasets`` is the owner's cache of loaded datasets (a fresh one when None).
    """
    row = base_row(cell, device)
    out = CellOutcome(row)
    reason = skip_reason(cell)  # before the plan: the walk leaves engine/setup.py once
    plan = precision_plan(cell)
    reason = reason or unsupported(plan.precision, device)
    reason = reason or compile_skip_reason(cell.train.compile, device)
    if reason:
        row.update(status="skipped", error=reason)
        row["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return out
    try:
        with precision_flags(plan) as in_force:  # TF32 and cuDNN flags, as read back from torch
            row.update(in_force)
            setup = setup_cell(cell, device, datasets)
            row["dataset_checksum"] = setup.data.manifest.get("checksum", "")
            if on_setup:
                on_setup(setup)
            choose_into(row, cell, setup.learner, device, setup.data.split("train").image_shape)
            measure_into(row, setup, memory_source)
            train_and_test(setup, out, progress, checkpoint)
        row["status"] = "ok"
    except DivergedError as e:
        row.update(status="diverged", diverged_at=e.iteration, error=str(e))
    except torch.OutOfMemoryError as e:
        row.update(status="oom", error=one_line(e))
        if device.type == "cuda":
            row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    except Exception as e:  # noqa: BLE001 - a failing cell must not stop the suite
        if isinstance(e, InputError):
            raise
        row.update(status="error", error=f"{type(e).__name__}: {one_line(e)}")
        row["traceback"] = traceback.format_exc(limit=8)
    row["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return out
