"""Conjugate gradient for symmetric positive-definite systems, batched over a leading dimension.

Shared by ``imaml`` and ``mrml``. ``b`` has shape (q,) for one system or (B, q) for B independent
systems solved together (dot products along the last dimension). In fixed-iteration mode
(``tol=None``) nothing is read back to the host, so the loop never synchronises a GPU. CG needs
a positive-definite matrix: for a softmax head that takes an L2 term (docs/design.md section 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]


@dataclass
class CGResult:
    """Solution ``x``, iterations run, relative residual ||A x - b|| / ||b|| per system, and
    ``curvature`` per system: the smallest Rayleigh quotient ``p'Ap / p'p`` CG met divided by the
    largest, over the iterations whose residual is above rounding (1 without iterations; <= 0:
    ``A`` is not positive definite along a search
    direction; tiny: CG's curvature collapsed, as with a singular system)."""

    x: Tensor
    iterations: int
    residual: Tensor
    curvature: Tensor | None = None


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), 0.0)


def conjugate_gradient(
    matvec: MatVec,
    b: Tensor,
    x0: Tensor | None = None,
    iters: int = 20,
    tol: float | None = None,
) -> CGResult:
    """Solve ``A x = b`` by at most ``iters`` CG iterations.

    ``tol`` switches on early stopping once every system's relative residual is <= tol (this
    reads the residual on the host once per iteration). A system whose residual is exactly zero
    stops moving instead of producing NaN.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    bnorm = b.norm(dim=-1, keepdim=True)
    qmin, qmax = torch.full_like(rr, torch.inf), torch.full_like(rr, -torch.inf)
    done = 0
    for _ in range(iters):
        if tol is not None and bool((rr.sqrt() <= tol * bnorm).all()):
            break
        ap = matvec(p)
        pap = _dot(p, ap)
        # Rayleigh quotient of the search direction, while the residual is above rounding
        # (a converged system's tiny p would underflow p'Ap in float32)
        q = _safe_div(pap, _dot(p, p))
        live = rr.sqrt() > 10 * torch.finfo(b.dtype).eps * bnorm
        qmin = torch.where(live, torch.minimum(qmin, q), qmin)
        qmax = torch.where(live, torch.maximum(qmax, q), qmax)
        alpha = _safe_div(rr, pap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _dot(r, r)
        p = r + _safe_div(rr_new, rr) * p
        rr = rr_new
        done += 1
    residual = (matvec(x) - b).norm(dim=-1) / bnorm.squeeze(-1).clamp_min(torch.finfo(b.dtype).tiny)
    curvature = torch.where(
        qmax > 0,
        qmin / qmax.clamp_min(torch.finfo(b.dtype).tiny),
        torch.where(qmax > -torch.inf, -1.0, 1.0),
    )
    return CGResult(x, done, residual, curvature.squeeze(-1))
