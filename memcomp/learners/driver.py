"""THE execution driver: one meta-batch run sequentially, batched, or batched in chunks
(docs/design.md section 7).

A learner supplies the work of one chunk of tasks in two steps, and the driver does the rest::

    state = learner.inner(chunk)          # phase "inner": adapt (lower level)
    out = learner.hypergrad(chunk, state) # phase "hypergrad": query loss, solves, objective

The driver chooses the chunks (``execution="sequential"``: one task each, ``chunk.batched`` False;
``"batched"``: ``task_chunk`` tasks stacked on a leading dimension, all by default; ``"auto"``:
see below), turns
gradients on, marks the phases (:func:`memcomp.measure.phases.phase`), back-propagates each
chunk's ``objective`` summed over its tasks and divided by the meta-batch size, adds the chunks'
flat ``meta_grad`` (if the learner returns one instead) into the meta-parameters' ``.grad``, and
assembles :class:`StepStats` (mean query loss, mean CG residual). Batching needs every task of a
meta-batch to have the same shapes; otherwise the driver runs the tasks one after another.

The driver holds ``state`` while ``hypergrad`` runs; a learner that wants to free part of it
early hands over a mutable container and empties it.

``execution="auto"`` (the default) is resolved into an :class:`Execution` (mode, chunk, reason):
``memcomp run`` chooses one per cell before training (:mod:`memcomp.engine.choose`: on a GPU
the largest chunk whose predicted peak fits) and sets it as ``learner.execution_plan``; without
one (a learner used directly) auto follows the learner class's CPU rule (``cpu_execution``,
measured on a CPU). An :class:`torch.OutOfMemoryError` in a chunked meta-batch that auto chose
retries the meta-batch ONCE with half the chunk, after restoring ``.grad`` and the learner's
retry state (:meth:`Learner.retry_state`) as they were, so the retried meta-gradient is the
un-failed one; the plan records it (``oom_retries``) and keeps the half chunk. A second
out-of-memory propagates (the cell becomes a ``status=oom`` row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from memcomp.measure.phases import phase
from memcomp.types import Task

if TYPE_CHECKING:
    from memcomp.learners.base import Learner


@dataclass
class StepStats:
    """What one ``meta_backward`` reports; tensors stay on device (no host sync)."""

    loss: Tensor
    cg_residual: Tensor | None = None
    lower_grad_norm: Tensor | None = None  # ||dg/dphi|| at the last inner step (mean)
    cg_curvature: Tensor | None = None  # smallest CG curvature ratio of any task (CGResult)


@dataclass
class Chunk:
    """Tasks processed together: ``first`` is the meta-batch slot of ``tasks[0]``; ``batched``
    says whether they are stacked on a leading dimension (else ``tasks`` is one task)."""

    tasks: list[Task]
    first: int
    batched: bool

    def stack(self, field: str) -> Tensor:
        """``torch.stack`` of the tasks' ``field`` (``"xs"``, ``"ys"``, ``"xq"``, ``"yq"``)."""
        return torch.stack([getattr(t, field) for t in self.tasks])

    def images(self, field: str) -> list[Tensor]:
        return [getattr(t, field) for t in self.tasks]


@dataclass
class ChunkOut:
    """One chunk's result: detached query losses (one per task), and EITHER an ``objective``
    (one per task, or a scalar for one task) the driver back-propagates, OR ``meta_grad``, the
    flat meta-gradient summed over the chunk's tasks; optional CG residuals (one per task)."""

    loss: Tensor
    objective: Tensor | None = None
    meta_grad: Tensor | None = None
    cg_residual: Tensor | None = None
    lower_grad_norm: Tensor | None = None
    cg_curvature: Tensor | None = None


def same_shapes(tasks: Sequence[Task]) -> bool:
    """Whether every task has the same support and query shapes (needed to stack them)."""
    first = tasks[0]
    return all(
        t.xs.shape == first.xs.shape
        and t.xq.shape == first.xq.shape
        and t.ys.shape == first.ys.shape
        and t.yq.shape == first.yq.shape
        for t in tasks
    )


def task_chunks(tasks: Sequence[Task], chunk: int | None) -> list[list[Task]]:
    """Consecutive chunks of at most ``chunk`` tasks (one chunk when ``chunk`` is None)."""
    size = len(tasks) if chunk is None else chunk
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


def use_batched(params: Any, tasks: Sequence[Task]) -> bool:
    """Batched execution allowed (``batched`` or ``auto``) and possible for ``tasks``."""
    return getattr(params, "execution", "sequential") != "sequential" and same_shapes(tasks)


Mode = Literal["sequential", "batched"]


@dataclass
class Execution:
    """How the driver runs a meta-batch: ``mode``, ``chunk`` (tasks per batched chunk, None: the
    whole meta-batch) and why. ``retry_on_oom`` (auto's choices): an out-of-memory in a batched
    chunk retries once with half the chunk, counted in ``oom_retries``."""

    mode: Mode
    chunk: int | None
    reason: str
    retry_on_oom: bool = False
    oom_retries: int = 0

    def chunk_used(self, tasks: int) -> int:
        """Tasks per chunk for a meta-batch of ``tasks`` tasks (1 when sequential)."""
        if self.mode == "sequential":
            return 1
        return tasks if self.chunk is None else min(self.chunk, tasks)


def rule_execution(cls: type) -> Execution:
    """``execution: auto`` by the learner class's CPU rule: ``cpu_execution`` ("sequential" or
    "batched", the faster on a CPU as measured) and its ``cpu_execution_reason``."""
    mode = getattr(cls, "cpu_execution", "sequential")
    why = getattr(cls, "cpu_execution_reason", "")
    if mode not in ("sequential", "batched"):
        raise ValueError(
            f"{cls.__name__}.cpu_execution must be sequential or batched, got {mode!r}"
        )
    reason = f"auto, CPU rule of {cls.__name__}: {mode}" + (f" ({why})" if why else "")
    return Execution(mode, None, reason, retry_on_oom=mode == "batched")


def requested_execution(params: Any, cls: type) -> Execution:
    """The :class:`Execution` the parameters ask for; ``auto`` without an explicit
    ``task_chunk`` gives the class's CPU rule (:func:`rule_execution`)."""
    mode = getattr(params, "execution", "sequential")
    chunk = getattr(params, "task_chunk", None)
    if mode == "sequential":
        return Execution("sequential", None, "execution: sequential")
    if mode == "batched":
        extra = "" if chunk is None else f", task_chunk: {chunk}"
        return Execution("batched", chunk, f"execution: batched{extra}")
    if chunk is not None:
        return Execution("batched", chunk, f"auto with task_chunk: {chunk} given: batched")
    return rule_execution(cls)


def resolve_execution(learner: Learner) -> Execution:
    """The learner's chosen plan (``learner.execution_plan``, set by ``memcomp run``), else what
    its parameters ask for."""
    plan = getattr(learner, "execution_plan", None)
    return plan if plan is not None else requested_execution(learner.params, type(learner))


def plan_chunks(
    learner: Learner, tasks: Sequence[Task], execution: Execution | None = None
) -> list[Chunk]:
    """The chunks ``learner`` runs ``tasks`` in (see the module docstring)."""
    ex = execution if execution is not None else resolve_execution(learner)
    if ex.mode != "batched" or not learner.batchable(tasks):
        return [Chunk([t], i, False) for i, t in enumerate(tasks)]
    chunks, first = [], 0
    for part in task_chunks(tasks, ex.chunk):
        chunks.append(Chunk(part, first, True))
        first += len(part)
    return chunks


def run_chunks(learner: Learner, tasks: Sequence[Task]) -> StepStats:
    """Accumulate ``learner``'s meta-gradient (mean over ``tasks``) into ``.grad``; an
    out-of-memory under auto's plan retries once with half the chunk (module docstring)."""
    if not tasks:
        raise ValueError("meta_backward needs at least one task")
    ex = resolve_execution(learner)
    chunks = plan_chunks(learner, tasks, ex)
    used = len(chunks[0].tasks)
    if not (ex.retry_on_oom and ex.oom_retries == 0 and chunks[0].batched and used > 1):
        return _run(learner, tasks, chunks)
    params = learner.meta_parameters()
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    state = learner.retry_state()
    try:
        return _run(learner, tasks, chunks)
    except torch.OutOfMemoryError:
        pass  # leave the handler first: its traceback holds the failed chunk's tensors
    del chunks
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    learner.restore_retry_state(state)
    if tasks[0].xs.device.type == "cuda":
        torch.cuda.empty_cache()
    half = used // 2
    ex.oom_retries += 1
    ex.chunk = half
    ex.reason += f"; out of memory with {used} tasks a chunk: retried with {half}"
    return _run(learner, tasks, plan_chunks(learner, tasks, ex))


def _run(learner: Learner, tasks: Sequence[Task], chunks: list[Chunk]) -> StepStats:
    n = len(tasks)
    losses, residuals, norms, curvatures = [], [], [], []
    total: Tensor | None = None
    with torch.enable_grad():
        for chunk in chunks:
            with phase("inner"):
                state = learner.inner(chunk)
            with phase("hypergrad"):
                out = learner.hypergrad(chunk, state)
                if out.objective is not None:
                    (out.objective.sum() / n).backward()
            del state
            if out.meta_grad is not None:
                total = out.meta_grad if total is None else total + out.meta_grad
            losses.append(out.loss.detach().reshape(-1))
            if out.cg_residual is not None:
                residuals.append(out.cg_residual.reshape(-1))
            if out.lower_grad_norm is not None:
                norms.append(out.lower_grad_norm.reshape(-1))
            if out.cg_curvature is not None:
                curvatures.append(out.cg_curvature.reshape(-1))
    if total is not None:
        with phase("hypergrad"):
            accumulate_flat(learner.meta_parameters(), total / n)
    residual = torch.cat(residuals).mean() if residuals else None
    norm = torch.cat(norms).mean() if norms else None
    curvature = torch.cat(curvatures).min() if curvatures else None
    return StepStats(
        loss=torch.cat(losses).mean(),
        cg_residual=residual,
        lower_grad_norm=norm,
        cg_curvature=curvature,
    )


def accumulate_flat(params: Sequence[Tensor], flat_grad: Tensor) -> None:
    """Add the flat vector ``flat_grad`` (laid out as ``params``) into their ``.grad``."""
    parts = torch.split(flat_grad, [p.numel() for p in params])
    for param, g in zip(params, parts, strict=True):
        g = g.view_as(param)
        if param.grad is None:
            param.grad = g.clone()
        else:
            param.grad.add_(g)
