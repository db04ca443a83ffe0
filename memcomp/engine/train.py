"""Meta-train one cell: the training loop (with checkpoints), memory measurement, final test."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import torch

from memcomp.config.cells import Cell
from memcomp.data import EpisodeSampler, Task
from memcomp.engine.checkpoint import load_checkpoint, save_checkpoint
from memcomp.engine.evaluation import AccuracyStats, evaluate
from memcomp.engine.row import TEST_SEED, VAL_SEED, final_columns
from memcomp.engine.setup import CellSetup, make_optimizer
from memcomp.learners import Learner
from memcomp.learners.convergence import divergence_reason
from memcomp.measure.memory import MemoryMeter, MemoryResult
from memcomp.measure.phases import phase
from memcomp.measure.timing import StepTimer, sync


class DivergedError(RuntimeError):
    """The meta-loss or meta-gradient became NaN or infinite, or CG diverged (``reason``)."""

    def __init__(self, iteration: int, reason: str = "loss or gradient not finite") -> None:
        super().__init__(f"{reason} at iteration {iteration}")
        self.iteration = iteration


class Progress(Protocol):
    """What the runner reports while a cell trains (the CLI draws it)."""

    def cell_started(self, cell: Cell, iterations: int) -> None: ...
    def iteration_done(self, iteration: int, val_acc: float | None) -> None: ...


def meta_step(
    learner: Learner,
    opt: torch.optim.Optimizer,
    tasks: list[Task],
    autocast: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Any:
    """One meta-iteration: zero grads, meta-gradient (inside ``autocast()``: the cell's
    precision, e.g. bf16 autocast), outer update (on the float32/float64 master weights)."""
    opt.zero_grad(set_to_none=True)
    with autocast() if autocast is not None else contextlib.nullcontext():
        stats = learner.meta_backward(tasks)
    with phase("outer_update"):
        opt.step()
    return stats


def _finite(stats: Any, learner: Learner) -> bool:
    vals = [stats.loss.detach().reshape(())]
    grads = [p.grad for p in learner.meta_parameters() if p.grad is not None]
    if grads:
        vals.append(torch.stack([g.detach().abs().sum() for g in grads]).sum())
    return bool(torch.isfinite(torch.stack(vals).to(torch.float64)).all())


def _autocast(setup: CellSetup) -> AbstractContextManager[Any]:
    return setup.autocast() if setup.autocast is not None else contextlib.nullcontext()


def measure_memory(setup: CellSetup, iterations: int = 2, source: str = "auto") -> MemoryResult:
    """Peak memory of meta-iterations on a copy of the learner: one warm-up, then measured ones."""
    learner = copy.deepcopy(setup.learner)
    learner.execution_plan = setup.learner.execution_plan  # one plan: an OOM retry carries over
    opt = make_optimizer(setup.cell, learner)
    opt.load_state_dict(setup.optimizer.state_dict())
    gen = torch.Generator().manual_seed(setup.cell.seed + 1)
    batches = [
        [
            t.to(setup.device, setup.dtype)
            for t in setup.train.sample_batch(gen, setup.cell.train.meta_batch)
        ]
        for _ in range(iterations + 1)
    ]
    meter = MemoryMeter(setup.device, source, resident=[learner, opt, batches])
    meta_step(learner, opt, batches[0], setup.autocast)  # warm-up: optimiser state, allocator
    for tasks in batches[1:]:
        with meter.measure():
            meta_step(learner, opt, tasks, setup.autocast)
    del learner, opt, batches
    return meter.result()


def record_execution(row: dict[str, Any], setup: CellSetup) -> None:
    """The execution columns as the cell ran (an out-of-memory retry halves the chunk)."""
    plan = setup.learner.execution_plan
    if plan is not None:
        row.update(final_columns(plan, setup.cell.train.meta_batch))


def measure_into(row: dict[str, Any], setup: CellSetup, source: str) -> None:
    plan = setup.learner.execution_plan
    retries = plan.oom_retries if plan is not None else 0
    try:
        mem = measure_memory(setup, source=source)
        if plan is not None and plan.oom_retries != retries:
            mem = measure_memory(setup, source=source)  # the failed chunk's peak is not the cell's
    finally:
        record_execution(row, setup)
    row.update(
        peak_mem_mb=mem.peak_mb,
        mem_baseline_mb=mem.baseline_mb,
        mem_reserved_mb=mem.reserved_mb,
        mem_source=mem.source,
    )
    if setup.autocast is not None:
        row["autocast_dtype"] = setup.autocast.seen  # as found in force in the meta-steps
    for name, mb in mem.phases.items():
        row[f"mem_{name}_mb"] = mb


def train_and_test(
    setup: CellSetup, out: Any, progress: Progress | None, checkpoint: Path | None = None
) -> None:
    try:
        _train_and_test(setup, out, progress, checkpoint)
    finally:
        record_execution(out.row, setup)


def _train_and_test(
    setup: CellSetup, out: Any, progress: Progress | None, checkpoint: Path | None
) -> None:
    cell, learner, dev = setup.cell, setup.learner, setup.device
    s, tr = cell.setting, cell.train
    val = EpisodeSampler(setup.data, "val", s.ways, s.shots, s.queries)
    val_eps = val.fixed_episodes(tr.val_episodes, VAL_SEED)
    gen = torch.Generator().manual_seed(cell.seed)
    timer = StepTimer(dev, warmup=1)
    residuals: list[torch.Tensor] = []
    lower_norm: float | None = None  # of the last meta-iteration
    train_seconds = 0.0
    best = -math.inf
    every = tr.checkpoint_every if checkpoint is not None else None
    start = 0
    if every is not None and checkpoint is not None:
        state = load_checkpoint(checkpoint, setup)
        if state is not None:
            start, gen = state["iteration"], state["generator"]
            train_seconds, best = state["train_seconds"], state["best"]
            timer.durations = list(state["durations"])
            residuals = [torch.tensor(r) for r in state["residuals"]]
            out.curve.extend(state["curve"])
            out.row["resumed_from_iteration"] = start
    if progress:
        progress.cell_started(cell, tr.iterations)
        if start:
            progress.iteration_done(start, out.curve[-1]["val_acc"] if out.curve else None)
    for it in range(start + 1, tr.iterations + 1):
        t0 = time.perf_counter()
        tasks = [t.to(dev, setup.dtype) for t in setup.train.sample_batch(gen, tr.meta_batch)]
        timer.start()
        stats = meta_step(learner, setup.optimizer, tasks, setup.autocast)
        timer.stop()
        if not _finite(stats, learner):
            raise DivergedError(it)
        reason = divergence_reason(stats)
        if reason is not None:
            raise DivergedError(it, reason)
        if stats.cg_residual is not None:
            residuals.append(stats.cg_residual.detach().reshape(()))
        if getattr(stats, "lower_grad_norm", None) is not None:
            lower_norm = float(stats.lower_grad_norm)
        sync(dev)
        train_seconds += time.perf_counter() - t0
        val_acc = None
        if it % tr.eval_every == 0 or it == tr.iterations:
            with _autocast(setup):
                acc = evaluate(learner, val_eps, cell.test, dev, setup.dtype)
            val_acc = acc.mean
            best = max(best, val_acc)
            out.curve.append(
                {"cell_id": cell.id, "iteration": it, "train_seconds": train_seconds,
                 "val_acc": acc.mean, "val_ci95": acc.ci95}
            )  # fmt: skip
        if every is not None and checkpoint is not None and it % every == 0 and it < tr.iterations:
            save_checkpoint(
                checkpoint, setup, it, gen,
                {"train_seconds": train_seconds, "best": best, "curve": out.curve,
                 "durations": timer.durations, "residuals": [float(r) for r in residuals]},
            )  # fmt: skip
        if progress:
            progress.iteration_done(it, val_acc)
    test = EpisodeSampler(setup.data, "test", s.ways, s.shots, s.queries)
    with _autocast(setup):
        stats_t: AccuracyStats = evaluate(
            learner, test.fixed_episodes(cell.test.episodes, TEST_SEED), cell.test, dev,
            setup.dtype,
        )  # fmt: skip
    out.episodes = stats_t.accs
    out.row.update(
        test_acc=stats_t.mean, test_ci95=stats_t.ci95, test_std=stats_t.std,
        best_val_acc=best, final_val_acc=out.curve[-1]["val_acc"] if out.curve else None,
        sec_per_iter=timer.median, train_seconds=train_seconds,
        cg_residual=float(residuals[-1]) if residuals else None,
        lower_grad_norm=lower_norm,
    )  # fmt: skip
