"""Predicted peak memory of a cell's meta-iteration, with nothing computed.

THE predictor of ``execution: auto`` (:mod:`memcomp.engine.choose`) and ``memcomp plan``: it runs
what :func:`memcomp.engine.train.measure_memory` runs (one warm-up meta-iteration, then one
measured, same optimiser) on torch's ``meta`` device, whose tensors have shapes and dtypes but no
data, under memcomp's CPU memory estimate (:mod:`memcomp.measure.memory`, measured on an H200 to
be 0.952 .. 1.004 of the CUDA peak). Every ATen op has a meta kernel that only computes output
shapes, so the estimate sees the same storages it sees on real CPU tensors (tested: the same
peak to the byte), in a time that does not depend on image size or batch size.

Only ``min(meta_batch, 2 * chunk)`` tasks are run (two chunks; sequential: two tasks): the peak
of every later chunk equals the second's (same shapes, ``.grad`` already allocated) and a smaller
last chunk cannot exceed it, so the peak increment is the full meta-batch's; the baseline
(weights, gradients, optimiser state, the ``iterations + 1`` meta-batches of images
``measure_memory`` holds) is completed from the images' sizes. Adam's step counters live on the
CPU: counted, as the CPU estimate counts them (a few hundred bytes per tensor). The warm-up is
an optimiser step on zero gradients (:func:`warm_up`): it leaves what a real one leaves.

A learner that cannot run on ``meta`` (it reads a value back, e.g. CG with a tolerance) is
measured the same way on random CPU tensors of the cell's shapes instead (slower; ``how``
says so).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from memcomp.backbones import build_backbone
from memcomp.config.cells import Cell
from memcomp.engine.row import one_line
from memcomp.engine.setup import make_learner, make_optimizer
from memcomp.engine.train import meta_step
from memcomp.learners import Learner
from memcomp.learners.driver import Execution
from memcomp.measure.memory import MB, MemoryMeter, round_alloc
from memcomp.types import Task

MEASURED_ITERATIONS = 2  # = measure_memory's default: it holds iterations + 1 meta-batches


@dataclass(frozen=True)
class Prediction:
    """One predicted meta-iteration of a cell run with ``mode`` and ``chunk`` tasks a chunk.

    ``peak_mb`` and ``baseline_mb`` are what the memory measurement reports as ``peak_mem_mb``
    and ``mem_baseline_mb`` with ``mem_source=cpu-estimate``; ``held_mb`` is all the cell holds
    at that peak (baseline + peak + the cell's own copy of the weights, which the measurement
    runs beside)."""

    mode: str
    chunk: int
    peak_mb: float
    baseline_mb: float
    held_mb: float
    how: str  # "meta device" or "cpu tensors (...)"


class PredictionError(RuntimeError):
    """Neither the meta device nor CPU tensors could run the cell's learner."""


def _storage_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(round_alloc(t.numel() * t.element_size()) for t in tensors)


class CellProbe:
    """A cell's learner, built once, run on ``meta`` (or CPU) tensors of the cell's shapes."""

    def __init__(self, cell: Cell, in_shape: tuple[int, int, int]) -> None:
        self.cell = cell
        self.in_shape = tuple(int(v) for v in in_shape)
        self.dtype = torch.float64 if cell.train.dtype == "float64" else torch.float32
        with torch.random.fork_rng():
            torch.manual_seed(cell.seed)
            backbone = build_backbone(cell.backbone.name, dict(cell.backbone.params), in_shape)
            learner = make_learner(cell, backbone)  # the cell's validated parameter model
        self.pristine: Learner = learner.to(dtype=self.dtype)
        self._meta: Learner | None = None
        self._cache: dict[tuple[str, int], Prediction] = {}

    # -- tasks ------------------------------------------------------------------------------

    def tasks(self, n: int, device: str) -> list[Task]:
        """``n`` tasks of the cell's shapes on ``device`` (random images on the CPU)."""
        s = self.cell.setting
        gen = torch.Generator().manual_seed(0)

        def part(shots: int) -> tuple[torch.Tensor, torch.Tensor]:
            m = s.ways * shots
            y = torch.arange(s.ways).repeat_interleave(shots)
            if device == "meta":
                return torch.empty(m, *self.in_shape, dtype=self.dtype, device="meta"), y.to("meta")
            return torch.randn(m, *self.in_shape, generator=gen, dtype=self.dtype), y

        out = []
        for _ in range(n):
            xs, ys = part(s.shots)
            xq, yq = part(s.queries)
            out.append(Task(xs, ys, xq, yq))
        return out

    def task_bytes(self) -> int:
        (task,) = self.tasks(1, "meta")
        return _storage_bytes([task.xs, task.ys, task.xq, task.yq])

    def model_bytes(self) -> int:
        """Weights and buffers of one copy of the learner."""
        return _storage_bytes([*self.pristine.parameters(), *self.pristine.buffers()])

    def batchable(self) -> bool:
        """Whether the learner would stack this cell's tasks (same shapes, own batched path)."""
        return bool(self.pristine.batchable(self.tasks(2, "meta")))

    # -- prediction -------------------------------------------------------------------------

    def predict(self, mode: str, chunk: int) -> Prediction:
        """The measurement of a meta-batch run with ``mode`` (``chunk`` tasks a chunk)."""
        key = (mode, chunk if mode == "batched" else 1)
        if key not in self._cache:
            try:
                self._cache[key] = self._measure(*key, "meta")
            except Exception as meta_error:  # noqa: BLE001 - any op without a meta kernel
                try:
                    got = self._measure(*key, "cpu")
                except Exception as e:  # noqa: BLE001
                    raise PredictionError(
                        f"{self.cell.learner.name}: no prediction on the meta device "
                        f"({type(meta_error).__name__}: {one_line(meta_error)}) nor on CPU "
                        f"tensors ({type(e).__name__}: {one_line(e)})"
                    ) from e
                why = f"{type(meta_error).__name__}: {one_line(meta_error, 120)}"
                self._cache[key] = _replace_how(got, f"cpu tensors (meta device: {why})")
        return self._cache[key]

    def _learner(self, device: str) -> Learner:
        if device == "cpu":
            return copy.deepcopy(self.pristine)
        if self._meta is None:
            self._meta = copy.deepcopy(self.pristine).to("meta")
        return copy.deepcopy(self._meta)

    def _measure(self, mode: str, chunk: int, device: str) -> Prediction:
        meta_batch = self.cell.train.meta_batch
        n = min(meta_batch, 2 * chunk)
        learner = self._learner(device)
        learner.execution_plan = Execution(mode, chunk, "prediction")  # type: ignore[arg-type]
        opt = make_optimizer(self.cell, learner)
        batches = [self.tasks(n, device) for _ in range(2)]
        dev = torch.device(device)
        meter = MemoryMeter(dev, "cpu-estimate", resident=[learner, opt, batches[1]])
        warm_up(learner, opt, batches[0])
        with meter.measure():
            meta_step(learner, opt, batches[1])
        got = meter.result()
        held_batches = MEASURED_ITERATIONS + 1  # measure_memory holds this many meta-batches
        extra_tasks = held_batches * meta_batch - n
        baseline = int(round((got.baseline_mb or 0.0) * MB)) + extra_tasks * self.task_bytes()
        if device == "meta":
            baseline += _cpu_state_bytes(opt)
        peak = int(round((got.peak_mb or 0.0) * MB))
        held = baseline + peak + self.model_bytes()
        how = "meta device" if device == "meta" else "cpu tensors"
        return Prediction(mode, chunk, peak / MB, baseline / MB, held / MB, how)


def warm_up(learner: Learner, opt: torch.optim.Optimizer, tasks: list[Task]) -> None:
    """What measure_memory's warm-up meta-iteration leaves: ``.grad`` and the optimiser state
    of every meta-parameter, made by one optimiser step on zero gradients (half the cost of a
    real meta-iteration). A learner whose meta-batch leaves state for the next one
    (``warm_start``) gets a real warm-up meta-iteration instead."""
    if getattr(learner.params, "warm_start", False):
        meta_step(learner, opt, tasks)
        return
    for p in learner.meta_parameters():
        p.grad = torch.zeros_like(p)
    opt.step()


def _cpu_state_bytes(opt: torch.optim.Optimizer) -> int:
    """Optimiser state kept on the CPU beside meta parameters (Adam's step counters)."""
    state = [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    return _storage_bytes([v for v in state if v.device.type == "cpu"])


def _replace_how(p: Prediction, how: str) -> Prediction:
    return Prediction(p.mode, p.chunk, p.peak_mb, p.baseline_mb, p.held_mb, how)


_PROBES: dict[str, CellProbe] = {}


def probe_for(
    cell: Cell, in_shape: tuple[int, int, int], factory: Callable[..., CellProbe] = CellProbe
) -> CellProbe:
    """One :class:`CellProbe` per configuration and shape in this process (the seed changes no
    shape: the cells of one configuration share their predictions)."""
    config: dict[str, Any] = cell.config()
    config.pop("seed", None)
    key = json.dumps([config, list(in_shape)], sort_keys=True, default=str)
    if key not in _PROBES:
        _PROBES[key] = factory(cell, in_shape)
    return _PROBES[key]
