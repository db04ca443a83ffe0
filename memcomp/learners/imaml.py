"""iMAML (Rajeswaran et al. 2019): implicit meta-gradients through a proximal lower level.

Per task the lower level is ``L_s(phi) + (lam/2)||phi - theta||^2`` over all weights (backbone and
head), with ``L_s`` the support cross-entropy. It is solved approximately by K gradient steps from
``phi = theta`` keeping no graph. At the solution ``d phi*/d theta = (I + H/lam)^{-1}`` with ``H``
the Hessian of ``L_s`` at ``phi``, so the meta-gradient is ``x = (I + H/lam)^{-1} grad L_q(phi_K)``,
found by N conjugate-gradient steps using Hessian-vector products (double backward of ``L_s``).

``execution="batched"`` (default) runs ``task_chunk`` tasks together: per-task weights (B, ...),
losses by ``torch.func.vmap`` over ``functional_call``, gradients and Hessian-vector products of
the summed loss by plain ``torch.autograd`` (exact with the fused BatchNorm), and one batched CG
over (B, q). Subclasses that override ``support_loss`` / ``query_loss`` run sequentially.

Caveat: CG assumes ``I + H/lam`` is positive definite. For a deep network ``H`` can be
indefinite; if its most negative eigenvalue is below ``-lam`` the system is indefinite and CG may
diverge or stall. Raise ``lam`` or ``damping`` (which adds ``damping * I``, as the iMAML reference
code's ``cg_damping`` does) and watch the reported CG residual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    use_batched,
    vmapped_losses,
)
from memcomp.learners.cg import CGResult, conjugate_gradient
from memcomp.types import Task

LossFn = Callable[[list[Tensor]], Tensor]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped as ``like``."""
    parts = torch.split(vec, [t.numel() for t in like])
    return [p.view_as(t) for p, t in zip(parts, like, strict=True)]


def proximal_descent(
    loss_fn: LossFn, theta: Sequence[Tensor], lam: float, steps: int, lr: float
) -> list[Tensor]:
    """``steps`` gradient steps on ``loss_fn(phi) + (lam/2)||phi - theta||^2`` from ``theta``.

    No graph is kept: the result is detached from ``theta``.
    """
    anchor = [t.detach() for t in theta]
    phi = anchor
    for _ in range(steps):
        leaves = [p.detach().requires_grad_() for p in phi]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            phi = [
                p - lr * (g + lam * (p - a)) for p, g, a in zip(leaves, grads, anchor, strict=True)
            ]
    return [p.detach() for p in phi]


def _proximal_matvec(
    loss_fn: LossFn,
    phi: Sequence[Tensor],
    lam: float,
    damping: float,
    to_flat: Callable[[Sequence[Tensor]], Tensor],
    from_flat: Callable[[Tensor, Sequence[Tensor]], list[Tensor]],
) -> Callable[[Tensor], Tensor]:
    """``v -> (1 + damping) v + H v / lam``, ``H`` the Hessian of ``loss_fn`` at ``phi``.

    Hessian-vector products are double backward passes through one retained gradient graph;
    ``to_flat`` / ``from_flat`` convert between the tensors and the vector layout of ``v``.
    """
    leaves = [p.detach().requires_grad_() for p in phi]
    grads = torch.autograd.grad(loss_fn(leaves), leaves, create_graph=True)
    live = [i for i, gi in enumerate(grads) if gi.requires_grad]

    def matvec(v: Tensor) -> Tensor:
        if not live:
            return v
        vs = from_flat(v, leaves)
        hv = torch.autograd.grad(
            [grads[i] for i in live],
            leaves,
            grad_outputs=[vs[i] for i in live],
            retain_graph=True,
            allow_unused=True,
        )
        hv = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, leaves, strict=True)]
        return (1.0 + damping) * v + to_flat(hv) / lam

    return matvec


def implicit_solve(
    loss_fn: LossFn,
    phi: Sequence[Tensor],
    g: Tensor,
    lam: float,
    iters: int,
    tol: float | None = None,
    x0: Tensor | None = None,
    damping: float = 0.0,
) -> CGResult:
    """Solve ``((1 + damping) I + H/lam) x = g`` by CG, ``H`` the Hessian of ``loss_fn`` at ``phi``.

    ``g`` is flat (numel of all ``phi``); Hessian-vector products are double backward passes
    through one retained gradient graph.
    """
    matvec = _proximal_matvec(loss_fn, phi, lam, damping, flatten, unflatten)
    return conjugate_gradient(matvec, g, x0=x0, iters=iters, tol=tol)


def batch_flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate per-task tensors (each (B, ...)) into one (B, q) matrix."""
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], 1)


def batch_unflatten(mat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a (B, q) matrix into per-task tensors shaped as ``like`` (each (B, ...))."""
    parts = torch.split(mat, [t[0].numel() for t in like], dim=1)
    return [p.reshape(t.shape) for p, t in zip(parts, like, strict=True)]


def implicit_solve_batched(
    loss_fn: LossFn,
    phi: Sequence[Tensor],
    g: Tensor,
    lam: float,
    iters: int,
    tol: float | None = None,
    damping: float = 0.0,
) -> CGResult:
    """:func:`implicit_solve` for B independent tasks at once.

    ``phi`` holds per-task tensors (B, ...), ``loss_fn`` returns the SUM of the tasks' losses (so
    the Hessian is block diagonal) and ``g`` is (B, q); CG runs batched over the B systems.
    """
    matvec = _proximal_matvec(loss_fn, phi, lam, damping, batch_flatten, batch_unflatten)
    return conjugate_gradient(matvec, g, iters=iters, tol=tol)


class ImamlParams(ExecutionParams):
    """Parameters of ``imaml``."""

    inner_steps: int = Field(
        10, ge=0, le=100_000, description="gradient steps K on the proximal objective"
    )
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner step size")
    lam: float = Field(1.0, gt=0, allow_inf_nan=False, description="proximal strength lambda")
    cg_steps: int = Field(5, ge=1, le=100_000, description="conjugate-gradient steps N (at most)")
    cg_tol: float | None = Field(
        None, gt=0, description="stop CG at this relative residual (None: always N steps)"
    )
    damping: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="solve ((1 + damping) I + H/lam) x = g: keeps CG stable when H is indefinite "
        "(the iMAML reference code uses cg_damping 1.0); 0 = the exact iMAML system",
    )


@LEARNERS.register(
    "imaml", "iMAML: implicit meta-gradient via CG on (I + H/lam), proximal inner loop", ImamlParams
)
class Imaml(BatchableLearner):
    """iMAML over all weights, one task after another."""

    params: ImamlParams

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    def _names_and_params(self) -> tuple[list[str], list[Tensor]]:
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        return [n for n, _ in named], [p for _, p in named]

    def support_loss(self, params: dict[str, Tensor], task: Task) -> Tensor:
        """Support loss ``L_s`` at weights ``params`` (without the proximal term)."""
        return F.cross_entropy(functional_call(self, params, (task.xs,)), task.ys)

    def query_loss(self, params: dict[str, Tensor], task: Task) -> Tensor:
        """Query loss ``L_q`` at weights ``params``."""
        return F.cross_entropy(functional_call(self, params, (task.xq,)), task.yq)

    def _support_fn(self, names: list[str], task: Task) -> LossFn:
        return lambda ps: self.support_loss(dict(zip(names, ps, strict=True)), task)

    def _adapt(self, names: list[str], theta: list[Tensor], task: Task) -> list[Tensor]:
        p = self.params
        return proximal_descent(
            self._support_fn(names, task), theta, p.lam, p.inner_steps, p.inner_lr
        )

    def _batchable(self, tasks: Sequence[Task]) -> bool:
        cls = type(self)
        own_losses = cls.support_loss is Imaml.support_loss and cls.query_loss is Imaml.query_loss
        return own_losses and use_batched(self.params, tasks)

    def _solve_chunk(
        self, names: list[str], theta: list[Tensor], chunk: Sequence[Task]
    ) -> tuple[Tensor, Tensor, CGResult]:
        """Batched inner loop and CG for ``chunk``: (query losses (B,), solutions (B, q), CG)."""
        p, b = self.params, len(chunk)
        xs, ys = torch.stack([t.xs for t in chunk]), torch.stack([t.ys for t in chunk])

        def support(ps: list[Tensor]) -> Tensor:
            return vmapped_losses(self, dict(zip(names, ps, strict=True)), xs, ys).sum()

        with self.phase("inner"):
            stacked = [t.detach().unsqueeze(0).expand(b, *t.shape) for t in theta]
            phi = proximal_descent(support, stacked, p.lam, p.inner_steps, p.inner_lr)
        with self.phase("hypergrad"):
            xq, yq = torch.stack([t.xq for t in chunk]), torch.stack([t.yq for t in chunk])
            leaves = [x.requires_grad_() for x in phi]
            loss = vmapped_losses(self, dict(zip(names, leaves, strict=True)), xq, yq)
            gq = batch_flatten(torch.autograd.grad(loss.sum(), leaves))
            sol = implicit_solve_batched(
                support, phi, gq, p.lam, p.cg_steps, p.cg_tol, damping=p.damping
            )
        return loss.detach(), sol.x, sol

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        names, theta = self._names_and_params()
        total: Tensor | None = None
        losses, residuals = [], []
        with torch.enable_grad():
            for chunk in task_chunks(tasks, self.params.task_chunk):
                loss, x, sol = self._solve_chunk(names, theta, chunk)
                total = x.sum(0) if total is None else total + x.sum(0)
                losses.append(loss)
                residuals.append(sol.residual)
        assert total is not None
        with self.phase("hypergrad"):
            self._accumulate(theta, total / len(tasks))
        return StepStats(loss=torch.cat(losses).mean(), cg_residual=torch.cat(residuals).mean())

    @staticmethod
    def _accumulate(theta: list[Tensor], flat_grad: Tensor) -> None:
        for param, g in zip(theta, unflatten(flat_grad, theta), strict=True):
            if param.grad is None:
                param.grad = g.clone()
            else:
                param.grad.add_(g)

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
        p = self.params
        names, theta = self._names_and_params()
        total: Tensor | None = None
        losses, residuals = [], []
        with torch.enable_grad():
            for task in tasks:
                with self.phase("inner"):
                    phi = self._adapt(names, theta, task)
                with self.phase("hypergrad"):
                    leaves = [x.requires_grad_() for x in phi]
                    loss = self.query_loss(dict(zip(names, leaves, strict=True)), task)
                    gq = flatten(torch.autograd.grad(loss, leaves))
                    sol = implicit_solve(
                        self._support_fn(names, task),
                        phi,
                        gq,
                        p.lam,
                        p.cg_steps,
                        p.cg_tol,
                        damping=p.damping,
                    )
                    total = sol.x if total is None else total + sol.x
                losses.append(loss)
                residuals.append(sol.residual)
        assert total is not None
        with self.phase("hypergrad"):
            self._accumulate(theta, total / len(tasks))
        return StepStats(loss=mean_loss(losses), cg_residual=torch.stack(residuals).mean())

    def adapt_predict(self, task: Task) -> Tensor:
        names, theta = self._names_and_params()
        with torch.enable_grad(), self.phase("inner"):
            phi = self._adapt(names, theta, task)
        with torch.no_grad():
            return functional_call(self, dict(zip(names, phi, strict=True)), (task.xq,)).detach()
