"""Forward-over-reverse Hessian-vector products (``hvp: forward`` of ``imaml`` and ``mrml``).

Used by :mod:`memcomp.numerics.hvp` when a learner asks for ``mode="forward"``.

``H v`` is the directional derivative of the gradient: ``torch.func.jvp`` over
``torch.func.grad`` of the loss, one forward-mode pass through a gradient computation per
product. The default (``hvp: reverse``) keeps ONE gradient graph alive and back-propagates
through it again for every product (double backward). Both give the same ``H v`` (tested in
float64, with BatchNorm in the model); the option shows how much of a method's cost is the
autodiff mode rather than the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.func import grad, jvp

from memcomp.numerics import head

HvpMode = Literal["reverse", "forward"]
LossFn = Callable[[list[Tensor]], Tensor]


def forward_hvp(loss_fn: LossFn, phi: Sequence[Tensor]) -> Callable[[list[Tensor]], list[Tensor]]:
    """``vs -> H vs`` with ``H`` the Hessian of ``loss_fn`` at ``phi`` (forward over reverse)."""
    primals = tuple(p.detach() for p in phi)
    grad_fn = grad(lambda ps: loss_fn(list(ps)))

    def hv(vs: Sequence[Tensor]) -> list[Tensor]:
        _, out = jvp(grad_fn, (primals,), (tuple(vs),))
        return list(out)

    return hv


def head_forward_hvp(
    z: Tensor, w: Tensor, b: Tensor, uw: Tensor, ub: Tensor, l2: float = 0.0
) -> tuple[Tensor, Tensor]:
    """:func:`memcomp.numerics.head.hvp` by forward over reverse autodiff of ``head.loss``.

    The cross-entropy Hessian does not depend on the labels (only on their sum per row, 1), so
    uniform soft labels stand in for them. Batched heads (B, ...) work too: the loss is summed
    over tasks, whose Hessian is block diagonal.
    """
    ways = w.shape[-2]
    y = torch.full((*z.shape[:-1], ways), 1.0 / ways, dtype=z.dtype, device=z.device)

    def total(w_: Tensor, b_: Tensor) -> Tensor:
        return head.loss(z, y, w_, b_, l2).sum()

    with torch.enable_grad():
        _, (hw, hb) = jvp(grad(total, argnums=(0, 1)), (w, b), (uw, ub))
    return hw, hb
