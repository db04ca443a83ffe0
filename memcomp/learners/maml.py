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
fused BatchNorm gives wrong second-order gradients; docs/design.md section 5), one
outer backward per chunk (:mod:`memcomp.learners.driver`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from memcomp.learners.base import Chunk, ChunkOut, Learner
from memcomp.learners.batching import vmapped_losses
from memcomp.learners.params import MamlParams
from memcomp.measure.phases import phase
from memcomp.types import Task

ParamDict = dict[str, Tensor]


class Maml(Learner):
    """Second-order MAML over all weights; ``first_order`` switches to FOMAML."""

    first_order: bool = False
    exact = True
    host_sync_free = True
    test_params = {"inner_steps": 2, "inner_lr": 0.3}
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

    def inner(self, chunk: Chunk) -> ParamDict:
        """Adapted weights of the chunk's tasks (per-task copies (B, ...) when batched)."""
        steps, second_order = self.params.inner_steps, not self.first_order
        start = self.named_meta_parameters()
        if not chunk.batched:
            task = chunk.tasks[0]
            return self.adapt(start, task.xs, task.ys, steps, create_graph=second_order)
        b = len(chunk.tasks)
        start = {k: p.unsqueeze(0).expand(b, *p.shape) for k, p in start.items()}
        return self.adapt_batched(start, chunk.stack("xs"), chunk.stack("ys"), steps, second_order)

    def hypergrad(self, chunk: Chunk, fast: ParamDict) -> ChunkOut:
        if not chunk.batched:
            task = chunk.tasks[0]
            loss = F.cross_entropy(functional_call(self, fast, (task.xq,)), task.yq)
        else:
            loss = vmapped_losses(self, fast, chunk.stack("xq"), chunk.stack("yq"))
        return ChunkOut(loss=loss.detach(), objective=loss)

    def adapt_predict(self, task: Task) -> Tensor:
        steps = self.params.test_inner_steps
        steps = self.params.inner_steps if steps is None else steps
        start = {n: p.detach().requires_grad_() for n, p in self.named_meta_parameters().items()}
        with torch.enable_grad(), phase("inner"):
            fast = self.adapt(start, task.xs, task.ys, steps, create_graph=False)
        with torch.no_grad():
            return functional_call(self, fast, (task.xq,)).detach()


class FoMaml(Maml):
    """First-order MAML: the inner-loop gradients are treated as constants."""

    first_order = True
    exact = False  # the first-order approximation of the MAML meta-gradient (no limit_params)
