"""Exact hypergradients of the bilevel problems the learners approximate (small models only).

* ``head``: lower level ``g = support CE + (l2/2)||phi||^2`` over the linear head from a fixed
  init, upper level ``f = query CE``, meta-parameters = the backbone (``mrml``, ``f2sa``,
  ``sama``, ``itd-bio``). ``phi*`` by gradient descent then Newton steps (explicit Hessian built
  from closed-form Hessian-vector products); hypergradient
  ``df/dtheta - (d2g/dtheta dphi) H^{-1} df/dphi`` with ``torch.linalg.solve``.
* ``proximal``: iMAML's lower level ``L_s(phi) + (lam/2)||phi - theta||^2`` over all weights;
  the implicit meta-gradient ``(I + H/lam)^{-1} grad L_q`` at the learner's own ``phi_K``, with
  the explicit Hessian of the network (feasible for a few hundred weights) and a direct solve.
* ``unrolled``: MAML's K-step objective, whose exact meta-gradient is ``maml``'s own (tested
  against finite differences in the learner tests).

Every function returns the mean over tasks as one flat vector in the order of
``learner.meta_parameters()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from memcomp.learners import Learner
from memcomp.learners.imaml import proximal_descent
from memcomp.numerics import head
from memcomp.numerics.flat import flatten
from memcomp.types import Task


def head_hessian(z: Tensor, w: Tensor, b: Tensor, l2: float) -> Tensor:
    """Explicit Hessian (q, q) of ``head.loss`` in the ``head.flatten`` layout."""
    q, ways = head.flatten(w, b).numel(), w.shape[0]
    eye = torch.eye(q, dtype=z.dtype, device=z.device)
    cols = [head.flatten(*head.hvp(z, w, b, *head.unflatten(e, ways), l2)) for e in eye]
    return torch.stack(cols, 1)


def head_solution(
    z: Tensor, y: Tensor, w0: Tensor, b0: Tensor, l2: float, newton: int = 30
) -> tuple[Tensor, Tensor]:
    """``argmin_phi head.loss + (l2/2)||phi||^2`` to ~1e-13: 200 GD steps, then Newton."""
    ways = w0.shape[0]
    w, b = head.gd(z, y, w0, b0, 200, 0.1, l2)
    for _ in range(newton):
        grad = head.flatten(*head.grad(z, y, w, b, l2))
        if float(grad.norm()) < 1e-14:
            break
        step = torch.linalg.solve(head_hessian(z, w, b, l2), grad)
        dw, db = head.unflatten(step, ways)
        w, b = w - dw, b - db
    return w, b


def head_hypergrad(learner: Learner, tasks: Sequence[Task], l2: float) -> Tensor:
    """Exact implicit hypergradient of the head-level problem w.r.t. the backbone."""
    params = learner.meta_parameters()
    total = torch.zeros_like(flatten([p.detach() for p in params]))
    ways = learner.ways
    for task in tasks:
        with torch.no_grad():
            zs, zq = learner.backbone(task.xs), learner.backbone(task.xq)
        w, b = head_solution(
            zs, task.ys, learner.head.weight.detach(), learner.head.bias.detach(), l2
        )
        rhs = head.flatten(*head.grad(zq, task.yq, w, b))
        vw, vb = head.unflatten(torch.linalg.solve(head_hessian(zs, w, b, l2), rhs), ways)
        with torch.enable_grad():
            zs_g, zq_g = learner.backbone(task.xs), learner.backbone(task.xq)
            gw, gb = head.grad(zs_g, task.ys, w, b)
            surrogate = head.loss(zq_g, task.yq, w, b) - (gw * vw).sum() - (gb * vb).sum()
            total += flatten(torch.autograd.grad(surrogate, params)) / len(tasks)
    return total


def proximal_hypergrad(
    learner: Learner, tasks: Sequence[Task], lam: float, steps: int, lr: float
) -> Tensor:
    """iMAML's ``(I + H/lam)^{-1} grad L_q(phi_K)`` solved exactly (explicit network Hessian).

    ``phi_K`` is the learner's own lower level (``steps`` proximal gradient steps of size ``lr``
    from theta): on a ReLU/BatchNorm network plain gradient descent on the proximal objective
    need not converge (a tiny Conv4 cycled with gradient norm ~0.5 after 4,000 steps), so the
    reference isolates the error of the linear solve (CG with N steps) at the same point.
    """
    named = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    shapes, sizes = [p.shape for _, p in named], [p.numel() for _, p in named]

    def as_dict(flat: Tensor) -> dict[str, Tensor]:
        parts = torch.split(flat, sizes)
        return {n: x.view(s) for n, x, s in zip(names, parts, shapes, strict=True)}

    def loss(flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(learner, as_dict(flat), (x,)), y)

    total = torch.zeros(sum(sizes), dtype=named[0][1].dtype, device=named[0][1].device)
    eye = torch.eye(total.numel(), dtype=total.dtype, device=total.device)
    for task in tasks:
        phi = flatten(
            proximal_descent(
                lambda ps, t=task: loss(flatten(ps), t.xs, t.ys),
                [p.detach() for _, p in named], lam, steps, lr,
            )
        )  # fmt: skip
        with torch.enable_grad():
            hess = torch.autograd.functional.hessian(lambda v, t=task: loss(v, t.xs, t.ys), phi)
            x = phi.detach().requires_grad_()
            (gq,) = torch.autograd.grad(loss(x, task.xq, task.yq), x)
        total += torch.linalg.solve(eye + hess / lam, gq) / len(tasks)
    return total
