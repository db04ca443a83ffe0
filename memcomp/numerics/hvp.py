"""Hessian-vector-product builders and the implicit linear solves built on them.

A builder returns a ``matvec`` (``v -> A v``) for a linear solver such as
:func:`memcomp.numerics.cg.conjugate_gradient`; the solver is a parameter, so a learner can swap it
(or the builder) without touching the other.

* :func:`proximal_matvec`: ``v -> (1 + damping) v + H v / lam``, ``H`` the Hessian of any scalar
  loss, by double backward through one retained gradient graph (iMAML);
* :func:`head_matvec`: the Hessian of a linear softmax head's regularised support loss in closed
  form (:func:`memcomp.numerics.head.hvp`, no graph at all; Algorithm 1 / mrml).

Both take ``mode``: ``"reverse"`` (above, the default) or ``"forward"``, forward-over-reverse
products (``torch.func.jvp`` over ``torch.func.grad``, :mod:`memcomp.numerics.forward_hvp`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from memcomp.numerics import head
from memcomp.numerics.cg import CGResult, MatVec, conjugate_gradient
from memcomp.numerics.flat import batch_flatten, batch_unflatten, flatten, unflatten
from memcomp.numerics.forward_hvp import HvpMode, forward_hvp, head_forward_hvp
from memcomp.numerics.solvers import Solver

__all__ = ["batch_flatten", "batch_unflatten", "flatten", "unflatten", "Solver", "LossFn"]

LossFn = Callable[[list[Tensor]], Tensor]


def proximal_matvec(
    loss_fn: LossFn,
    phi: Sequence[Tensor],
    lam: float,
    damping: float = 0.0,
    batched: bool = False,
    mode: HvpMode = "reverse",
) -> MatVec:
    """``v -> (1 + damping) v + H v / lam``, ``H`` the Hessian of ``loss_fn`` at ``phi``.

    Hessian-vector products are double backward passes through one retained gradient graph.
    ``v`` is flat (numel of all ``phi``), or with ``batched`` a (B, q) matrix for per-task tensors
    (B, ...) whose ``loss_fn`` is the SUM of the tasks' losses (so ``H`` is block diagonal).
    """
    to_flat, from_flat = (batch_flatten, batch_unflatten) if batched else (flatten, unflatten)
    if mode == "forward":
        hvp = forward_hvp(loss_fn, phi)
        return lambda v: torch.add(to_flat(hvp(from_flat(v, phi))).div_(lam), v, alpha=1 + damping)
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
        return torch.add(to_flat(hv).div_(lam), v, alpha=1.0 + damping)

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
    solver: Solver | None = None,
    batched: bool = False,
    mode: HvpMode = "reverse",
) -> CGResult:
    """Solve ``((1 + damping) I + H/lam) x = g`` with ``solver``, ``H`` the Hessian of ``loss_fn``
    at ``phi``; ``g`` is flat (numel of all ``phi``). With ``batched``: B independent tasks at
    once, ``phi`` per-task tensors (B, ...), ``loss_fn`` the SUM of the tasks' losses, ``g`` (B, q),
    the solver batched over the B systems."""
    matvec = proximal_matvec(loss_fn, phi, lam, damping, batched=batched, mode=mode)
    return (solver or conjugate_gradient)(matvec, g, x0=x0, iters=iters, tol=tol)


def head_matvec(
    zs: Tensor, w: Tensor, b: Tensor, l2: float, ways: int, mode: HvpMode = "reverse"
) -> MatVec:
    """``v -> H v`` for the head's support objective at ``(W, b)``, ``v`` in the flat layout of
    :func:`memcomp.numerics.head.flatten` (batched over a leading task dimension if ``zs`` is)."""
    if mode == "forward":

        def forward(x: Tensor) -> Tensor:
            return head.flatten(*head_forward_hvp(zs, w, b, *head.unflatten(x, ways), l2))

        return forward
    # one fused closed form in the head's flat layout: with z1 = [z, 1] the logits' change
    # along U1 = [U, c] (rows [U_k, c_k], head.flatten's layout) is z1 U1^T, and the product
    # [S^T z, sum_rows S] is S^T z1: two matmuls, four elementwise ops and the L2 term
    z1 = head.with_ones(zs)
    probs = head.probs(zs, w, b)
    scaled = probs / zs.shape[-2]
    shape = (*w.shape[:-1], w.shape[-1] + 1)

    def matvec(x: Tensor) -> Tensor:
        u1 = x.reshape(shape)
        u = z1 @ u1.transpose(-1, -2)
        pu = probs * u
        s = scaled * (u - pu.sum(-1, keepdim=True))
        out = (s.transpose(-1, -2) @ z1).reshape(x.shape)
        return torch.add(out, x, alpha=l2) if l2 else out

    return matvec
