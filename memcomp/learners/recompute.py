"""MAML with gradient checkpointing through the inner loop (``maml-recompute``).

The meta-gradient is exactly ``maml``'s (second order through K SGD steps on all weights), but the
graph of the whole inner loop is never held. The forward pass runs the K steps keeping NO graph
and stores the fast weights at the start of every segment of ``segment`` steps (default
``ceil(sqrt(K))``). The backward pass walks the segments from the last to the first: it re-runs one
segment from its stored start WITH a second-order graph and back-propagates the incoming
vector ``g = dL/d(phi_end)`` through it (one vector-Jacobian product), giving ``dL/d(phi_start)``.
At the first segment's start ``phi_0 = theta`` this is the meta-gradient.

The driver runs the graph-free forward as phase ``inner`` and the segment recomputation as
``hypergrad``; the learner returns the flat meta-gradient (``ChunkOut.meta_grad``).

Memory: one segment's graph (``segment`` inner steps) plus ``K / segment`` stored copies of the
weights, so about ``sqrt(K)`` inner-step graphs instead of ``K`` (the weights are small next to the
activations). Time: every inner step runs twice (once without graph, once with), as in the
``torch_maml`` package's checkpointing. Both execution modes reuse ``maml``'s step code, so the
recomputed segments are the same operations as ``maml``'s inner loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from memcomp.learners.base import Chunk, ChunkOut
from memcomp.learners.batching import vmapped_losses
from memcomp.learners.family_params import RecomputeParams
from memcomp.learners.maml import Maml, ParamDict
from memcomp.numerics.flat import flatten

# (start weights, steps, create_graph) -> weights after the steps
Adapt = Callable[[ParamDict, int, bool], ParamDict]


def segment_length(steps: int, segment: int | None) -> int:
    """Steps per segment: ``segment``, or ``ceil(sqrt(steps))`` (at least 1)."""
    if segment is not None:
        return segment
    return max(1, math.ceil(math.sqrt(steps)))


def detached_leaves(weights: ParamDict) -> ParamDict:
    return {n: w.detach().requires_grad_() for n, w in weights.items()}


@dataclass
class Checkpoints:
    """The graph-free forward: fast weights at each segment start, and at the end."""

    adapt: Adapt
    bounds: list[int]
    starts: list[ParamDict]
    end: ParamDict


def forward_checkpoints(adapt: Adapt, start: ParamDict, steps: int, segment: int) -> Checkpoints:
    """Run ``steps`` inner steps keeping no graph; store the weights every ``segment`` steps."""
    bounds = list(range(0, steps, segment))
    stored: list[ParamDict] = []
    fast = {n: w.detach() for n, w in start.items()}
    for first in bounds:
        stored.append(fast)
        fast = adapt(detached_leaves(fast), min(segment, steps - first), False)
        fast = {n: w.detach() for n, w in fast.items()}
    return Checkpoints(adapt, bounds, stored, fast)


def backward_segments(
    ck: Checkpoints, steps: int, segment: int, grads: list[Tensor]
) -> list[Tensor]:
    """Back-propagate ``grads`` (d loss / d end weights) to the first segment's start: each
    segment is re-run from its stored start WITH a second-order graph, one VJP, then freed."""
    for first, seg_start in zip(reversed(ck.bounds), reversed(ck.starts), strict=True):
        leaves = detached_leaves(seg_start)
        seg_end = ck.adapt(leaves, min(segment, steps - first), True)
        grads = list(torch.autograd.grad(list(seg_end.values()), list(leaves.values()), grads))
        del seg_end
    return grads


class MamlRecompute(Maml):
    """Second-order MAML whose inner loop is recomputed segment by segment in the backward."""

    exact = True
    test_params = {"inner_steps": 3, "inner_lr": 0.3, "segment": 2}
    params: RecomputeParams

    def _segment(self) -> int:
        return segment_length(self.params.inner_steps, self.params.segment)

    def inner(self, chunk: Chunk) -> Checkpoints:
        """The graph-free inner loop of the chunk's tasks, with its segment checkpoints."""
        start = self.named_meta_parameters()
        if not chunk.batched:
            task = chunk.tasks[0]

            def adapt(w: ParamDict, s: int, graph: bool) -> ParamDict:
                return self.adapt(w, task.xs, task.ys, s, create_graph=graph)

        else:
            b, xs, ys = len(chunk.tasks), chunk.stack("xs"), chunk.stack("ys")
            start = {k: p.detach().unsqueeze(0).expand(b, *p.shape) for k, p in start.items()}

            def adapt(w: ParamDict, s: int, graph: bool) -> ParamDict:
                return self.adapt_batched(w, xs, ys, s, create_graph=graph)

        return forward_checkpoints(adapt, start, self.params.inner_steps, self._segment())

    def hypergrad(self, chunk: Chunk, ck: Checkpoints) -> ChunkOut:
        """Query gradient at the adapted weights, back-propagated segment by segment."""
        end = detached_leaves(ck.end)
        if not chunk.batched:
            task = chunk.tasks[0]
            loss = F.cross_entropy(functional_call(self, end, (task.xq,)), task.yq)
        else:
            loss = vmapped_losses(self, end, chunk.stack("xq"), chunk.stack("yq"))
        grads = list(torch.autograd.grad(loss.sum(), list(end.values())))
        grads = backward_segments(ck, self.params.inner_steps, self._segment(), grads)
        if chunk.batched:
            grads = [g.sum(0) for g in grads]
        return ChunkOut(loss=loss.detach(), meta_grad=flatten(grads))
