"""Shared skeleton of the first-order head-level bilevel learners (``f2sa``, ``sama``).

Bilevel problem per task, as Algorithm 1 (``mrml``): lower level ``g(theta, phi) = support CE +
(l2/2)||phi||^2`` over the linear head ``phi = (W, b)`` from a fixed (frozen) head
initialisation, upper level ``f(theta, phi) = query CE``, ``theta`` the backbone. A subclass
provides two steps:

1. :meth:`HeadBilevel.solve` on DETACHED features: the lower-level iterates the method needs
   (constants afterwards), batched over an optional leading task dimension;
2. :meth:`HeadBilevel.surrogate`: a per-task scalar built from features WITH a graph whose
   gradient in ``theta`` is the method's hypergradient estimate; it is back-propagated once.

Peak memory is one forward graph of the backbone, flat in K, as for ``mrml``. Sequential mode
computes the features twice (without graph in ``inner``, with graph in ``hypergrad``); batched
mode runs ONE grouped forward with graph per chunk and detaches it for step 1 (same values, so the
same meta-gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memcomp.learners.base import Chunk, ChunkOut, Learner
from memcomp.learners.batching import grouped_features
from memcomp.learners.family_params import HeadBilevelParams
from memcomp.numerics import head
from memcomp.types import Task


@dataclass
class Solution:
    """What step 1 leaves for step 2: constant head iterates and the lower-level gradient norm."""

    heads: tuple[Tensor, ...]
    lower_grad_norm: Tensor  # ||dg/dphi|| at phi_K, per task


def grad_norm(w_grad: Tensor, b_grad: Tensor) -> Tensor:
    """Per-task norm of a head gradient ``(dW, db)``."""
    return head.sq_norm(w_grad, b_grad).sqrt()


class HeadBilevel(Learner):
    """Base of head-level learners whose hypergradient is one backward of a surrogate scalar."""

    meta_learns_head = False
    cpu_execution = "batched"
    cpu_execution_reason = (
        "f2sa 1.30x, sama 1.14x faster than sequential on a 2-core CPU, CIFAR shape, meta-batch 8, "
        "K=20 (2026-12-04, 1 thread, load average about 1)"
    )
    params: HeadBilevelParams

    def lower_gd(self, zs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """K steps on ``g`` from the head init: ``(W_K, b_K, ||dg/dphi (W_K, b_K)||)``."""
        p = self.params
        w0, b0 = self.head.weight.detach(), self.head.bias.detach()
        if zs.dim() == 3:
            w0 = w0.expand(zs.shape[0], -1, -1)
            b0 = b0.expand(zs.shape[0], -1)
        w, b = head.gd(zs, ys, w0, b0, p.inner_steps, p.inner_lr, p.l2)
        return w, b, grad_norm(*head.grad(zs, ys, w, b, p.l2))

    def solve(self, zs: Tensor, ys: Tensor, zq: Tensor, yq: Tensor) -> Solution:
        """Step 1 on detached features (shapes (n, d) or (B, n, d))."""
        raise NotImplementedError

    def surrogate(self, zs: Tensor, ys: Tensor, zq: Tensor, yq: Tensor, sol: Solution) -> Tensor:
        """Step 2: per-task scalar whose theta-gradient is the hypergradient."""
        raise NotImplementedError

    def inner(self, chunk: Chunk) -> list:
        """Step 1. Batched: features WITH graph (kept for the one backward), detached copies
        feed the lower level. Sequential: features without graph."""
        if not chunk.batched:
            task = chunk.tasks[0]
            with torch.no_grad():
                zs, zq = self.backbone(task.xs), self.backbone(task.xq)
                return [None, None, self.solve(zs, task.ys, zq, task.yq)]
        zs_g = grouped_features(self.backbone, chunk.images("xs"))
        zq_g = grouped_features(self.backbone, chunk.images("xq"))
        sol = self.solve(zs_g.detach(), chunk.stack("ys"), zq_g.detach(), chunk.stack("yq"))
        return [zs_g, zq_g, sol]

    def hypergrad(self, chunk: Chunk, state: list) -> ChunkOut:
        """Step 2: the surrogate on features with graph (recomputed when sequential)."""
        zs, zq, sol = state
        state.clear()
        if chunk.batched:
            ys, yq = chunk.stack("ys"), chunk.stack("yq")
        else:
            task = chunk.tasks[0]
            ys, yq = task.ys, task.yq
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
        loss = head.loss(zq.detach(), yq, sol.heads[0], sol.heads[1])
        objective = self.surrogate(zs, ys, zq, yq, sol)
        return ChunkOut(loss=loss, objective=objective, lower_grad_norm=sol.lower_grad_norm)

    def adapt_predict(self, task: Task) -> Tensor:
        return self.head_gd_predict(task, self.params.l2)
