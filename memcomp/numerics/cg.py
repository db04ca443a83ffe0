"""Conjugate gradient for symmetric positive-definite systems, batched over a leading dimension.

Shared by ``imaml`` and ``mrml`` (through :func:`memcomp.numerics.solvers.make_solver`). ``b`` has
shape (q,) for one system or (B, q) for B independent systems solved together (dot products along
the last dimension). In fixed-iteration mode (``tol=None``) nothing is read back to the host, so
the loop never synchronises a GPU (``tests/test_solvers.py`` counts the reads). The updates are
fused and in place on one flat vector per system (``addcmul``: one op per update, the curvature
diagnostics: each iteration's ``p'Ap``, ``p'p`` and ``r'r`` kept, quotients and liveness
computed once after the loop), so a step is few kernel launches besides the matvec
(``benchmarks/speed.py --opcount``). CG needs a positive-definite matrix: for a softmax head that
takes an L2 term (docs/design.md section 3).
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
    direction; tiny: CG's curvature collapsed, as with a singular system). Solvers without search
    directions (Neumann) leave it None."""

    x: Tensor
    iterations: int
    residual: Tensor
    curvature: Tensor | None = None


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


def relative_residual(matvec: MatVec, x: Tensor, b: Tensor) -> Tensor:
    """``||A x - b|| / ||b||`` per system (shape ``b.shape[:-1]``)."""
    tiny = torch.finfo(b.dtype).tiny
    return (matvec(x) - b).norm(dim=-1) / b.norm(dim=-1).clamp_min(tiny)


def _curvature(paps: list[Tensor], pps: list[Tensor], rrs: list[Tensor], floor: Tensor) -> Tensor:
    """min / max of the live Rayleigh quotients ``p'Ap / p'p`` per system (see
    :class:`CGResult`), from each iteration's ``p'Ap``, ``p'p`` and ``r'r``: computed once after
    the loop, not per iteration."""
    if not paps:
        return torch.ones_like(floor[..., 0])
    q = torch.cat(paps, -1) / torch.cat(pps, -1)  # NaN only where p = 0, which is never live
    live = torch.cat(rrs, -1) > floor
    qmin = torch.where(live, q, torch.inf).amin(-1)
    qmax = torch.where(live, q, -torch.inf).amax(-1)
    tiny = torch.finfo(floor.dtype).tiny
    return torch.where(
        qmax > 0, qmin / qmax.clamp_min(tiny), torch.where(qmax > -torch.inf, -1.0, 1.0)
    )


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
    r = b.clone() if x0 is None else b - matvec(x)
    p = r.clone()
    rr = _dot(r, r)
    # residual above rounding: rr > (10 eps ||b||)^2, the Rayleigh quotient is then meaningful
    # (a converged system's tiny p would underflow p'Ap in float32)
    floor = _dot(b, b) * (10 * torch.finfo(b.dtype).eps) ** 2
    stop = None if tol is None else _dot(b, b) * tol**2
    tiny = torch.finfo(b.dtype).tiny
    paps: list[Tensor] = []  # p'Ap, p'p and r'r of each iteration, for the curvature
    pps: list[Tensor] = []
    rrs: list[Tensor] = []
    done = 0
    for _ in range(iters):
        if stop is not None and bool((rr <= stop).all()):
            break
        ap = matvec(p)
        pap = _dot(p, ap)
        paps.append(pap)
        pps.append(_dot(p, p))
        rrs.append(rr)
        alpha = torch.where(pap != 0, rr / pap, 0.0)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1.0)
        rr_new = _dot(r, r)
        p = torch.addcmul(r, rr_new / rr.clamp_min(tiny), p)  # beta = 0 once rr = 0
        rr = rr_new
        done += 1
    residual = relative_residual(matvec, x, b)
    return CGResult(x, done, residual, _curvature(paps, pps, rrs, floor))
