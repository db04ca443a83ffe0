"""One machine, many GPUs: each cell child pinned to one GPU with ``CUDA_VISIBLE_DEVICES``.

``--gpus 0,1,2,3`` (default: all visible) runs one cell per GPU at once; ``--cells-per-gpu K``
lets K cells share a GPU, and then every row says so (``gpu_shared``), since its time and peak
memory are no longer the cell's alone. Indices count the GPUs this process sees: under
``CUDA_VISIBLE_DEVICES=4,5``, ``--gpus 1`` is physical GPU 5.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_problem(gpus: Sequence[int] | str, visible: Sequence[str]) -> str | None:
    """Why ``--gpus`` cannot be used with the ``visible`` GPUs (None when it can)."""
    if not visible:
        return "no CUDA GPU is visible here; use --device cpu (and --jobs for parallel cells)"
    if gpus == "all":
        return None
    bad = [g for g in gpus if g >= len(visible)]
    if bad:
        return (f"GPU index {bad[0]} does not exist: {len(visible)} visible "
                f"(valid: 0-{len(visible) - 1})")  # fmt: skip
    return None


@dataclass
class GpuSlots:
    """Which GPU each running cell has; a GPU takes at most ``per_gpu`` cells."""

    gpus: list[int]
    per_gpu: int = 1
    visible: list[str] = field(default_factory=list)
    busy: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.busy = {g: 0 for g in self.gpus}
        if not self.visible:
            self.visible = [str(g) for g in range(max(self.gpus, default=-1) + 1)]

    @property
    def capacity(self) -> int:
        return len(self.gpus) * self.per_gpu

    def acquire(self) -> int:
        """The least busy GPU (lowest index first); raises when all are full."""
        gpu = min(self.gpus, key=lambda g: (self.busy[g], g))
        if self.busy[gpu] >= self.per_gpu:
            raise RuntimeError("no free GPU slot")
        self.busy[gpu] += 1
        return gpu

    def release(self, gpu: int) -> None:
        self.busy[gpu] -= 1

    def env(self, gpu: int) -> dict[str, str]:
        """The child's pinning: it sees only ``gpu`` (as its ``cuda:0``)."""
        return {"CUDA_VISIBLE_DEVICES": self.visible[gpu]}

    def columns(self, gpu: int) -> dict[str, Any]:
        """Row columns: which GPU, and whether it was shared with other cells."""
        return {"gpu": gpu, "cells_per_gpu": self.per_gpu, "gpu_shared": self.per_gpu > 1}


def gpu_slots(gpus: Sequence[int] | str, per_gpu: int, visible: Sequence[str]) -> GpuSlots:
    """Slots over ``gpus`` (``all``: every visible GPU)."""
    chosen = list(range(len(visible))) if gpus == "all" else list(gpus)
    return GpuSlots(chosen, per_gpu, list(visible))


def local_gpu_slots(
    executor: Any, device: Any, isolation: str, jobs: int, explicit: bool
) -> GpuSlots | None:
    """GPU pinning for a local CUDA run in processes (None otherwise). ``explicit``: ``--gpus``
    (or the suite's ``executor.gpus``) was given. ``--jobs N`` without it keeps its meaning: N
    cells at once on the first GPU (rows say it is shared)."""
    from memcomp.errors import InputError

    if executor.kind != "local":
        return None
    if device.type != "cuda" or isolation != "process":
        if explicit:
            raise InputError("--gpus: needs --device cuda and process isolation")
        return None
    visible = visible_gpus()
    why = gpu_problem(executor.gpus, visible)
    if why:
        raise InputError(f"--gpus: {why}")
    if jobs > 1 and not explicit:
        return gpu_slots([0], max(jobs, executor.cells_per_gpu), visible)
    return gpu_slots(executor.gpus, executor.cells_per_gpu, visible)


def pinned(options: Any, device: Any) -> Any:
    """``options`` (RunOptions) with the local GPU slots of a run on ``device`` (none unless a
    CUDA run in processes); ``--gpus`` where it cannot apply is an InputError."""
    where = options.executor_options
    if where is None or options.gpu_slots is not None:
        return options
    explicit = "gpus" in where.model_fields_set
    slots = local_gpu_slots(where, device, options.isolation, options.jobs, explicit)
    return options.model_copy(update={"gpu_slots": slots})
