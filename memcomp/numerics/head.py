"""Closed-form maths of a linear softmax head, batched over an optional leading task dimension.

The head is ``logits = z W^T + b`` with features ``z`` (n, d) or (B, n, d), weights ``W``
(ways, d) or (B, ways, d), bias ``b`` (ways,) or (B, ways) and labels ``y`` (n,) or (B, n). The
objective of one task is the mean cross-entropy plus ``(l2 / 2) * (||W||^2 + ||b||^2)``.

Writing ``P = softmax(logits)`` and ``Y = onehot(y)``:

* gradient: ``G = (P - Y) / n``, ``dW = G^T z + l2 W``, ``db = sum_rows(G) + l2 b``;
* Hessian-vector product along ``(U, c)``: ``u = z U^T + c`` (per-row logit change),
  ``S = (P * u - P * <P, u>) / n``, ``H(U, c) = (S^T z + l2 U, sum_rows(S) + l2 c)``.

Everything is made of ordinary tensor ops, so these functions are differentiable (``grad`` is
used with a graph through ``z`` by the learners) and work for any float dtype and device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memcomp.numerics.flat import flatten_head, unflatten_head


def logits(z: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``z W^T + b`` per task: (..., n, ways)."""
    return z @ w.transpose(-1, -2) + b.unsqueeze(-2)


def with_ones(z: Tensor) -> Tensor:
    """Features with a column of ones appended, ``z1 = [z, 1]`` (..., n, d + 1): against the
    augmented head ``[W, b]`` (:func:`flatten`'s rows) the logits are ``z1 [W, b]^T``."""
    return torch.cat([z, torch.ones_like(z[..., :1])], -1)


def onehot(y: Tensor, ways: int, like: Tensor) -> Tensor:
    """One-hot labels in the dtype of ``like``; a floating ``y`` is taken as already one-hot.

    Every function taking labels ``y`` accepts either form; converting once up front saves the
    per-call conversion. Built by comparison, never reading a value back to the host (``one_hot``
    checks the label range with a host read on the CPU); labels outside 0..ways-1 give zero rows.
    """
    if y.is_floating_point():
        return y.to(like.dtype)
    return (y.unsqueeze(-1) == torch.arange(ways, device=y.device)).to(like.dtype)


def sq_norm(w: Tensor, b: Tensor) -> Tensor:
    """``||W||^2 + ||b||^2`` per task: shape (...)."""
    return w.square().sum((-1, -2)) + b.square().sum(-1)


def loss(z: Tensor, y: Tensor, w: Tensor, b: Tensor, l2: float = 0.0) -> Tensor:
    """Mean cross-entropy plus ``(l2/2)||(W, b)||^2`` per task: shape (...), scalar unbatched."""
    lg = logits(z, w, b)
    ce = -(lg.log_softmax(-1) * onehot(y, w.shape[-2], lg)).sum(-1).mean(-1)
    return ce + 0.5 * l2 * sq_norm(w, b) if l2 else ce


def grad(z: Tensor, y: Tensor, w: Tensor, b: Tensor, l2: float = 0.0) -> tuple[Tensor, Tensor]:
    """Gradient of :func:`loss` w.r.t. ``(W, b)`` in closed form (differentiable in ``z``)."""
    lg = logits(z, w, b)
    g = (lg.softmax(-1) - onehot(y, w.shape[-2], lg)) / z.shape[-2]
    gw = g.transpose(-1, -2) @ z
    gb = g.sum(-2)
    if l2:
        gw, gb = gw + l2 * w, gb + l2 * b
    return gw, gb


def probs(z: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Softmax probabilities (..., n, ways); pass to :func:`hvp` to reuse across many products."""
    return logits(z, w, b).softmax(-1)


def hvp(
    z: Tensor,
    w: Tensor,
    b: Tensor,
    uw: Tensor,
    ub: Tensor,
    l2: float = 0.0,
    p: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Hessian of :func:`loss` w.r.t. ``(W, b)`` at ``(W, b)`` applied to ``(uw, ub)``.

    ``p`` (from :func:`probs` at the same point) skips recomputing the softmax.
    """
    p = probs(z, w, b) if p is None else p
    u = logits(z, uw, ub)
    s = (p * u - p * (p * u).sum(-1, keepdim=True)) / z.shape[-2]
    hw = s.transpose(-1, -2) @ z
    hb = s.sum(-2)
    if l2:
        hw, hb = hw + l2 * uw, hb + l2 * ub
    return hw, hb


def gd(
    z: Tensor, y: Tensor, w: Tensor, b: Tensor, steps: int, lr: float, l2: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``steps`` gradient-descent steps on :func:`loss` from ``(W, b)``, keeping no graph.

    The steps run on the augmented head ``W1 = [W, b]`` against features ``z1 = [z, 1]``
    (``logits = z1 W1^T``, gradient ``G^T z1`` with ``G = P - Y``, the ``1/n`` folded into the
    step), so a step is two matmuls, a softmax and three in-place ops: a third of the kernels of
    :func:`grad` plus two updates (``benchmarks/speed.py --opcount``). ``W1`` is updated in
    place, so under autocast the iterate keeps its own dtype (float32 master weights) while the
    matmuls run in the autocast dtype, as in :func:`grad`.
    """
    with torch.no_grad():
        z = z.detach()
        z1 = with_ones(z)
        w1 = torch.cat([w.detach(), b.detach().unsqueeze(-1)], -1)
        y = onehot(y, w.shape[-2], z)
        decay, step = 1.0 - lr * l2, lr / z.shape[-2]
        for _ in range(steps):
            g = (z1 @ w1.transpose(-1, -2)).softmax(-1).sub_(y)
            if l2:
                w1.mul_(decay)
            w1.sub_(g.transpose(-1, -2) @ z1, alpha=step)
    return w1[..., :-1].contiguous(), w1[..., -1].contiguous()


def gd_graph(
    z: Tensor, y: Tensor, w: Tensor, b: Tensor, steps: int, lr: float, l2: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Same steps as :func:`gd` but differentiable in ``z``, ``W`` and ``b`` (second order)."""
    y = onehot(y, w.shape[-2], z)
    for _ in range(steps):
        gw, gb = grad(z, y, w, b, l2)
        w, b = w - lr * gw, b - lr * gb
    return w, b


# the head's layout lives with every other flattening (memcomp/numerics/flat.py)
flatten = flatten_head
unflatten = unflatten_head
