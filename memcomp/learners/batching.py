"""Execution modes shared by the learners: tasks one after another, or batched in chunks.

``execution="batched"`` processes ``task_chunk`` tasks (all by default) together:

* head-adapting learners (anil, itd-bio, mrml) run the backbone ONCE over the stacked images of
  the chunk with per-task BatchNorm statistics (:func:`grouped_features`) and do the head maths
  batched over a leading task dimension;
* MAML-style learners (maml, fomaml, imaml) evaluate all tasks' losses at per-task weights with
  ``torch.func.vmap`` over ``functional_call`` (:func:`vmapped_losses`) and differentiate the summed
  loss with plain ``torch.autograd`` (each task's weights only reach its own loss, so the gradient
  of the sum is every task's own gradient). Plain autograd outside vmap is exact with the fused
  BatchNorm; ``torch.func.grad`` inside vmap is not (design notes, section 4).

Both modes give the same meta-gradient (tested in float64). Batching needs every task of a chunk
to have the same shapes; otherwise the learners fall back to one task at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call, vmap

from memcomp.backbones.norm import TaskBatchNorm2d, deinterleave, interleave, task_groups
from memcomp.learners.base import Learner, LearnerParams, StepStats
from memcomp.types import Task

Execution = Literal["sequential", "batched"]


class ExecutionParams(LearnerParams):
    """Learner parameters with an execution mode."""

    execution: Execution = Field(
        "batched",
        description="tasks of a meta-batch one after another (sequential) or together (batched); "
        "same meta-gradient",
    )
    task_chunk: int | None = Field(
        None,
        ge=1,
        description="batched mode: tasks processed together (None: the whole meta-batch); "
        "smaller chunks use less memory",
    )


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


def use_batched(params: LearnerParams, tasks: Sequence[Task]) -> bool:
    """Batched execution requested and possible for ``tasks``."""
    return getattr(params, "execution", "sequential") == "batched" and same_shapes(tasks)


class BatchableLearner(Learner):
    """A learner with a sequential and a batched ``meta_backward``; it runs the batched one when
    :meth:`_batchable` says so."""

    def _batchable(self, tasks: Sequence[Task]) -> bool:
        return use_batched(self.params, tasks)

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        if not tasks:
            raise ValueError("meta_backward needs at least one task")
        if self._batchable(tasks):
            return self._meta_backward_batched(tasks)
        return self._meta_backward_sequential(tasks)

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        raise NotImplementedError

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
        raise NotImplementedError


def grouped_features(backbone: nn.Module, images: Sequence[Tensor]) -> Tensor:
    """Features (B, n, d) of B tasks' images (each (n, C, H, W)) in ONE backbone forward.

    BatchNorm layers that are :class:`~memcomp.backbones.norm.TaskBatchNorm2d` use each task's
    own statistics, so this equals ``torch.stack([backbone(x) for x in images])``.
    """
    b = len(images)
    check_task_norm(backbone)
    x = interleave(torch.stack(list(images)))
    with task_groups(b):
        z = backbone(x)
    return deinterleave(z, b)


def check_task_norm(backbone: nn.Module) -> None:
    """Refuse backbones whose BatchNorm would mix tasks' statistics in a grouped forward."""
    for m in backbone.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, TaskBatchNorm2d):
            raise ValueError(
                f"batched execution needs TaskBatchNorm2d, found {type(m).__name__}; "
                "use execution='sequential'"
            )


def vmapped_losses(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Per-task cross-entropy (B,) of ``model`` at per-task weights ``params`` (each (B, ...)).

    Parameters of ``model`` missing from ``params`` (frozen ones) are shared by all tasks.
    """

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, p, (xi,)), yi)

    return vmap(one)(params, x, y)
