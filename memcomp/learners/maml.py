"""MAML (Finn et al. 2017) and its first-order variant FOMAML.

Every meta-parameter (backbone and head) is the initialisation that K SGD steps on the support
cross-entropy adapt per task; the meta-gradient is the gradient of the query cross-entropy at the
adapted weights with respect to the initialisation. ``maml`` differentiates through the inner
loop (second order, ``create_graph=True``); ``fomaml`` treats the inner gradients as constants, so
its meta-gradient is the query gradient at the adapted weights.

``execution="sequential"`` runs tasks one after another, each task's outer backward freeing its
graph before the next task starts. ``execution="batched"`` (default) adapts per-task copies of the
weights of ``task_chunk`` tasks together: losses by ``torch.func.vmap`` over ``functional_call``,
gradients of their sum by plain ``torch.autograd.grad`` (``torch.func.grad`` + ``vmap`` with the
fused BatchNorm gives wrong second-order gradients; design notes, section 4), one outer backward
per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.func import functional_call

from memcomp.learners import LEARNERS
from memcomp.learners.base import StepStats, mean_loss
from memcomp.learners.batching import (
    BatchableLearner,
    ExecutionParams,
    task_chunks,
    vmapped_losses,
)
from memcomp.types import Task

ParamDict = dict[str, Tensor]


class MamlParams(ExecutionParams):
    """Parameters of ``maml`` and ``fomaml``."""

    inner_steps: int = Field(
        5, ge=0, le=100_000, description="inner SGD steps K on the support set"
    )
    inner_lr: float = Field(0.4, gt=0, allow_inf_nan=False, description="inner SGD step size")
    test_inner_steps: int | None = Field(
        None, ge=0, le=100_000, description="inner steps at native meta-test (None: inner_steps)"
    )


@LEARNERS.register(
    "maml", "MAML: second-order meta-gradient through K SGD steps on all weights", MamlParams
)
class Maml(BatchableLearner):
    """Second-order MAML over all weights; ``first_order`` switches to FOMAML."""

    first_order: bool = False
    params: MamlParams

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    def named_meta_parameters(self) -> ParamDict:
        """Meta-parameters by name; frozen parameters are neither meta-learned nor adapted."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def adapt(
        self, start: ParamDict, xs: Tensor, ys: Tensor, steps: int, create_graph: bool
    ) -> ParamDict:
        """``steps`` SGD steps on the support cross-entropy from ``start`` (differentiable in
        ``start``; with ``create_graph=False`` the inner gradients are constants)."""
        lr = self.params.inner_lr
        fast = start
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(self, fast, (xs,)), ys)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
            fast = {n: p - lr * g for (n, p), g in zip(fast.items(), grads, strict=True)}
        return fast

    def adapt_batched(
        self, start: ParamDict, xs: Tensor, ys: Tensor, steps: int, create_graph: bool
    ) -> ParamDict:
        """:meth:`adapt` for per-task weights ``start`` (each (B, ...)) and images (B, n, ...)."""
        lr = self.params.inner_lr
        fast = start
        for _ in range(steps):
            loss = vmapped_losses(self, fast, xs, ys).sum()
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
            fast = {n: p - lr * g for (n, p), g in zip(fast.items(), grads, strict=True)}
        return fast

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        n = len(tasks)
        losses = []
        with torch.enable_grad():
            for chunk in task_chunks(tasks, self.params.task_chunk):
                b = len(chunk)
                xs, ys = torch.stack([t.xs for t in chunk]), torch.stack([t.ys for t in chunk])
                with self.phase("inner"):
                    start = {
                        k: p.unsqueeze(0).expand(b, *p.shape)
                        for k, p in self.named_meta_parameters().items()
                    }
                    fast = self.adapt_batched(
                        start, xs, ys, self.params.inner_steps, not self.first_order
                    )
                    del xs, ys
                with self.phase("hypergrad"):
                    xq, yq = torch.stack([t.xq for t in chunk]), torch.stack([t.yq for t in chunk])
                    loss = vmapped_losses(self, fast, xq, yq)
                    (loss.sum() / n).backward()
                losses.append(loss.detach())
        return StepStats(loss=torch.cat(losses).mean())

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
        n = len(tasks)
        losses = []
        with torch.enable_grad():
            for task in tasks:
                with self.phase("inner"):
                    fast = self.adapt(
                        self.named_meta_parameters(),
                        task.xs,
                        task.ys,
                        self.params.inner_steps,
                        create_graph=not self.first_order,
                    )
                with self.phase("hypergrad"):
                    loss = F.cross_entropy(functional_call(self, fast, (task.xq,)), task.yq)
                    (loss / n).backward()
                losses.append(loss)
        return StepStats(loss=mean_loss(losses))

    def adapt_predict(self, task: Task) -> Tensor:
        steps = self.params.test_inner_steps
        steps = self.params.inner_steps if steps is None else steps
        start = {n: p.detach().requires_grad_() for n, p in self.named_meta_parameters().items()}
        with torch.enable_grad(), self.phase("inner"):
            fast = self.adapt(start, task.xs, task.ys, steps, create_graph=False)
        with torch.no_grad():
            return functional_call(self, fast, (task.xq,)).detach()


@LEARNERS.register(
    "fomaml", "first-order MAML: query gradient at the adapted weights, no second order", MamlParams
)
class FoMaml(Maml):
    """First-order MAML: the inner-loop gradients are treated as constants."""

    first_order = True
