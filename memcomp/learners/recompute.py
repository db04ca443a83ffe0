"""MAML with gradient checkpointing through the inner loop (``maml-recompute``).

The meta-gradient is exactly ``maml``'s (second order through K SGD steps on all weights), but the
graph of the whole inner loop is never held. The forward pass runs the K steps keeping NO graph
and stores the fast weights at the start of every segment of ``segment`` steps (default
``ceil(sqrt(K))``). The backward pass walks the segments from the last to the first: it re-runs one
segment from its stored start WITH a second-order graph and back-propagates the incoming
vector ``g = dL/d(phi_end)`` through it (one vector-Jacobian product), giving ``dL/d(phi_start)``.
At the first segment's start ``phi_0 = theta`` this is the meta-gradient.

Memory: one segment's graph (``segment`` inner steps) plus ``K / segment`` stored copies of the
weights, so about ``sqrt(K)`` inner-step graphs instead of ``K`` (the weights are small next to the
activations). Time: every inner step runs twice (once without graph, once with), as in the
``torch_maml`` package's checkpointing. Both execution modes reuse ``maml``'s step code, so the
recomputed segments are the same operations as ``maml``'s inner loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.func import functional_call

from memcomp.learners import LEARNERS
from memcomp.learners.base import PhaseFn, StepStats, mean_loss, no_phase
from memcomp.learners.batching import task_chunks, vmapped_losses
from memcomp.learners.maml import Maml, MamlParams, ParamDict
from memcomp.types import Task

# (start weights, steps, create_graph) -> weights after the steps
Adapt = Callable[[ParamDict, int, bool], ParamDict]
QueryLoss = Callable[[ParamDict], Tensor]


class RecomputeParams(MamlParams):
    """Parameters of ``maml-recompute``."""

    segment: int | None = Field(
        None,
        ge=1,
        description="inner steps per checkpointed segment (None: ceil(sqrt(K))); the peak holds "
        "one segment's graph plus K/segment stored weights",
    )


def segment_length(steps: int, segment: int | None) -> int:
    """Steps per segment: ``segment``, or ``ceil(sqrt(steps))`` (at least 1)."""
    if segment is not None:
        return segment
    return max(1, math.ceil(math.sqrt(steps)))


def detached_leaves(weights: ParamDict) -> ParamDict:
    return {n: w.detach().requires_grad_() for n, w in weights.items()}


def checkpointed_meta_grad(
    adapt: Adapt,
    start: ParamDict,
    steps: int,
    segment: int,
    query_loss: QueryLoss,
    phase: PhaseFn = no_phase,
) -> tuple[Tensor, list[Tensor]]:
    """Query loss at the adapted weights and its gradient w.r.t. ``start`` (one per weight).

    ``adapt(w, s, create_graph)`` runs ``s`` inner steps from ``w``; only one segment's graph is
    alive at a time. The graph-free forward is phase ``inner``, the rest ``hypergrad``.
    """
    bounds = list(range(0, steps, segment))
    stored: list[ParamDict] = []
    fast = {n: w.detach() for n, w in start.items()}
    with phase("inner"):
        for first in bounds:
            stored.append(fast)
            fast = adapt(detached_leaves(fast), min(segment, steps - first), False)
            fast = {n: w.detach() for n, w in fast.items()}
    with phase("hypergrad"):
        end = detached_leaves(fast)
        loss = query_loss(end)
        grads = list(torch.autograd.grad(loss, list(end.values())))
        grads = _backward_segments(adapt, bounds, stored, steps, segment, grads)
    return loss.detach(), grads


def _backward_segments(
    adapt: Adapt,
    bounds: list[int],
    stored: list[ParamDict],
    steps: int,
    segment: int,
    grads: list[Tensor],
) -> list[Tensor]:
    """Back-propagate ``grads`` from the last segment's end to the first segment's start."""
    for first, seg_start in zip(reversed(bounds), reversed(stored), strict=True):
        leaves = detached_leaves(seg_start)
        seg_end = adapt(leaves, min(segment, steps - first), True)
        grads = list(torch.autograd.grad(list(seg_end.values()), list(leaves.values()), grads))
        del seg_end
    return grads


def accumulate(params: Sequence[Tensor], grads: Sequence[Tensor], scale: float) -> None:
    """``p.grad += scale * g`` for each meta-parameter."""
    for p, g in zip(params, grads, strict=True):
        if p.grad is None:
            p.grad = g * scale
        else:
            p.grad.add_(g, alpha=scale)


@LEARNERS.register(
    "maml-recompute",
    "MAML with gradient checkpointing through the inner loop: maml's meta-gradient, ~sqrt(K) "
    "inner-step graphs in memory",
    RecomputeParams,
)
class MamlRecompute(Maml):
    """Second-order MAML whose inner loop is recomputed segment by segment in the backward."""

    params: RecomputeParams

    def _segment(self) -> int:
        return segment_length(self.params.inner_steps, self.params.segment)

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
        n, steps = len(tasks), self.params.inner_steps
        named = self.named_meta_parameters()
        losses = []
        with torch.enable_grad():
            for task in tasks:

                def adapt(w: ParamDict, s: int, graph: bool, task: Task = task) -> ParamDict:
                    return self.adapt(w, task.xs, task.ys, s, create_graph=graph)

                def query(w: ParamDict, task: Task = task) -> Tensor:
                    return F.cross_entropy(functional_call(self, w, (task.xq,)), task.yq)

                loss, grads = checkpointed_meta_grad(
                    adapt, named, steps, self._segment(), query, self.phase
                )
                with self.phase("hypergrad"):
                    accumulate(list(named.values()), grads, 1.0 / n)
                losses.append(loss)
        return StepStats(loss=mean_loss(losses))

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        n, steps = len(tasks), self.params.inner_steps
        named = self.named_meta_parameters()
        losses = []
        with torch.enable_grad():
            for chunk in task_chunks(tasks, self.params.task_chunk):
                b = len(chunk)
                xs, ys = torch.stack([t.xs for t in chunk]), torch.stack([t.ys for t in chunk])
                xq, yq = torch.stack([t.xq for t in chunk]), torch.stack([t.yq for t in chunk])
                start = {k: p.detach().unsqueeze(0).expand(b, *p.shape) for k, p in named.items()}
                per_task: list[Tensor] = []

                def adapt(w: ParamDict, s: int, graph: bool, xs=xs, ys=ys) -> ParamDict:
                    return self.adapt_batched(w, xs, ys, s, create_graph=graph)

                def query(w: ParamDict, xq=xq, yq=yq, out=per_task) -> Tensor:
                    loss = vmapped_losses(self, w, xq, yq)
                    out.append(loss.detach())
                    return loss.sum()

                _, grads = checkpointed_meta_grad(
                    adapt, start, steps, self._segment(), query, self.phase
                )
                with self.phase("hypergrad"):
                    accumulate(list(named.values()), [g.sum(0) for g in grads], 1.0 / n)
                losses.append(per_task[0])
        return StepStats(loss=torch.cat(losses).mean())
