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
computes the features twice (without, then with graph); batched mode runs ONE grouped forward
with graph per chunk and detaches it for step 1 (same values, so the same meta-gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pydantic import Field
from torch import Tensor

from memcomp.learners import head
from memcomp.learners.base import StepStats, mean_loss
from memcomp.learners.batching import (
    BatchableLearner,
    ExecutionParams,
    grouped_features,
    task_chunks,
)
from memcomp.types import Task


class HeadBilevelParams(ExecutionParams):
    """Parameters shared by the head-level first-order learners."""

    inner_steps: int = Field(20, ge=0, description="lower-level gradient steps K on the head")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="lower-level step size")
    l2: float = Field(
        0.01,
        ge=0,
        allow_inf_nan=False,
        description="(l2/2)||phi||^2 in the lower level; > 0 makes it strongly convex",
    )


@dataclass
class Solution:
    """What step 1 leaves for step 2: constant head iterates and the lower-level gradient norm."""

    heads: tuple[Tensor, ...]
    lower_grad_norm: Tensor  # ||dg/dphi|| at phi_K, per task


def grad_norm(w_grad: Tensor, b_grad: Tensor) -> Tensor:
    """Per-task norm of a head gradient ``(dW, db)``."""
    return head.sq_norm(w_grad, b_grad).sqrt()


class HeadBilevel(BatchableLearner):
    """Base of head-level learners whose hypergradient is one backward of a surrogate scalar."""

    meta_learns_head = False
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

    def query_loss(self, zq: Tensor, yq: Tensor, sol: Solution) -> Tensor:
        """The reported loss: query CE at the first head of ``sol`` (detached)."""
        return head.loss(zq, yq, sol.heads[0], sol.heads[1]).detach()

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
        n = len(tasks)
        losses, norms = [], []
        for task in tasks:
            with self.phase("inner"), torch.no_grad():
                zs, zq = self.backbone(task.xs), self.backbone(task.xq)
                sol = self.solve(zs, task.ys, zq, task.yq)
            with self.phase("hypergrad"), torch.enable_grad():
                zs_g, zq_g = self.backbone(task.xs), self.backbone(task.xq)
                (self.surrogate(zs_g, task.ys, zq_g, task.yq, sol) / n).backward()
            losses.append(self.query_loss(zq, task.yq, sol))
            norms.append(sol.lower_grad_norm)
        return StepStats(loss=mean_loss(losses), lower_grad_norm=torch.stack(norms).mean())

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        n = len(tasks)
        losses, norms = [], []
        for chunk in task_chunks(tasks, self.params.task_chunk):
            ys, yq = torch.stack([t.ys for t in chunk]), torch.stack([t.yq for t in chunk])
            with self.phase("inner"):
                with torch.enable_grad():  # the graph is kept for the one backward below
                    zs_g = grouped_features(self.backbone, [t.xs for t in chunk])
                    zq_g = grouped_features(self.backbone, [t.xq for t in chunk])
                zs, zq = zs_g.detach(), zq_g.detach()
                sol = self.solve(zs, ys, zq, yq)
            with self.phase("hypergrad"), torch.enable_grad():
                (self.surrogate(zs_g, ys, zq_g, yq, sol).sum() / n).backward()
            del zs_g, zq_g
            losses.append(self.query_loss(zq, yq, sol))
            norms.append(sol.lower_grad_norm)
        return StepStats(loss=torch.cat(losses).mean(), lower_grad_norm=torch.cat(norms).mean())

    def adapt_predict(self, task: Task) -> Tensor:
        return self.head_gd_predict(task, self.params.l2)
