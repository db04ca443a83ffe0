"""THE execution driver: one meta-batch run sequentially, batched, or batched in chunks
(docs/design.md section 7).

A learner supplies the work of one chunk of tasks in two steps, and the driver does the rest::

    state = learner.inner(chunk)          # phase "inner": adapt (lower level)
    out = learner.hypergrad(chunk, state) # phase "hypergrad": query loss, solves, objective

The driver chooses the chunks (``execution="sequential"``: one task each, ``chunk.batched`` False;
``"batched"``: ``task_chunk`` tasks stacked on a leading dimension, all by default), turns
gradients on, marks the phases (:func:`memcomp.measure.phases.phase`), back-propagates each
chunk's ``objective`` summed over its tasks and divided by the meta-batch size, adds the chunks'
flat ``meta_grad`` (if the learner returns one instead) into the meta-parameters' ``.grad``, and
assembles :class:`StepStats` (mean query loss, mean CG residual). Batching needs every task of a
meta-batch to have the same shapes; otherwise the driver runs the tasks one after another.

The driver holds ``state`` while ``hypergrad`` runs; a learner that wants to free part of it
early hands over a mutable container and empties it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    """Batched execution requested and possible for ``tasks``."""
    return getattr(params, "execution", "sequential") == "batched" and same_shapes(tasks)


def plan_chunks(learner: Learner, tasks: Sequence[Task]) -> list[Chunk]:
    """The chunks ``learner`` runs ``tasks`` in (see the module docstring)."""
    if not learner.batchable(tasks):
        return [Chunk([t], i, False) for i, t in enumerate(tasks)]
    chunks, first = [], 0
    for part in task_chunks(tasks, getattr(learner.params, "task_chunk", None)):
        chunks.append(Chunk(part, first, True))
        first += len(part)
    return chunks


def run_chunks(learner: Learner, tasks: Sequence[Task]) -> StepStats:
    """Accumulate ``learner``'s meta-gradient (mean over ``tasks``) into ``.grad``."""
    if not tasks:
        raise ValueError("meta_backward needs at least one task")
    n = len(tasks)
    losses, residuals, norms, curvatures = [], [], [], []
    total: Tensor | None = None
    with torch.enable_grad():
        for chunk in plan_chunks(learner, tasks):
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
