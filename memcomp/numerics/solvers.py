"""Linear solvers as factories: ``make_solver(name, **opts)`` gives a callable solving
``(A + shift I) x = b`` from a matrix-vector product closure ``A v`` (a Hessian-vector product).

Every solver has the signature ``solver(matvec, b, *, x0=None, iters, tol=None) -> CGResult``
(``b`` (q,) or (B, q), batched over the leading dimension) and never reads a value back to the
host unless ``tol`` is given:

* ``cg``: conjugate gradient (:func:`memcomp.numerics.cg.conjugate_gradient`), ``iters`` steps;
* ``neumann``: the truncated Neumann series ``x = alpha sum_{k<K} (I - alpha A)^k b`` with
  ``K = iters`` terms (Richardson iteration ``x <- x + alpha (b - A x)``: one product per term).
  It converges when ``0 < alpha < 2 / lambda_max(A)``; the error after K terms is
  ``(I - alpha A)^K (x0 - x*)``, at most ``rho^K ||x0 - x*||`` with
  ``rho = max_i |1 - alpha lambda_i|`` (``tests/test_solvers.py`` checks that bound).

``imaml`` and ``mrml`` pick one with their ``solver`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from memcomp.numerics.cg import CGResult, MatVec, conjugate_gradient, relative_residual

SolverName = Literal["cg", "neumann"]
SOLVERS: tuple[str, ...] = ("cg", "neumann")


class Solver(Protocol):
    def __call__(
        self, matvec: MatVec, b: Tensor, *, x0: Tensor | None = None, iters: int = 20,
        tol: float | None = None,
    ) -> CGResult: ...  # fmt: skip


def neumann(
    matvec: MatVec,
    b: Tensor,
    x0: Tensor | None = None,
    iters: int = 20,
    tol: float | None = None,
    alpha: float = 1.0,
) -> CGResult:
    """``iters`` terms of the Neumann series of ``A^{-1} b`` with step ``alpha`` (from ``x0``,
    default 0); ``tol`` stops once every system's relative residual is <= tol (a host read per
    term)."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b.clone() if x0 is None else b - matvec(x)
    stop = None if tol is None else (b * b).sum(-1) * tol**2
    done = 0
    for _ in range(iters):
        if stop is not None and bool(((r * r).sum(-1) <= stop).all()):
            break
        x.add_(r, alpha=alpha)
        r.sub_(matvec(r), alpha=alpha)  # r = b - A x, kept without another product
        done += 1
    return CGResult(x, done, relative_residual(matvec, x, b))


def _shifted(matvec: MatVec, shift: float) -> MatVec:
    return matvec if not shift else (lambda v: torch.add(matvec(v), v, alpha=shift))


def make_solver(name: str, *, shift: float = 0.0, **opts: Any) -> Solver:
    """The solver ``name`` (``cg`` or ``neumann``) for ``(A + shift I) x = b``; ``opts``:
    ``alpha`` for ``neumann`` (its step, required), none for ``cg``."""
    base: Callable[..., CGResult]
    if name == "cg":
        if opts:
            raise ValueError(f"solver cg takes no options (got {', '.join(sorted(opts))})")
        base = conjugate_gradient
    elif name == "neumann":
        if set(opts) != {"alpha"} or not float(opts["alpha"]) > 0:
            raise ValueError("solver neumann needs one option, alpha > 0 (its step size)")
        alpha = float(opts["alpha"])

        def base(matvec: MatVec, b: Tensor, **kw: Any) -> CGResult:
            return neumann(matvec, b, alpha=alpha, **kw)
    else:
        raise ValueError(f"unknown solver {name!r} (valid: {', '.join(SOLVERS)})")

    def solve(
        matvec: MatVec, b: Tensor, *, x0: Tensor | None = None, iters: int = 20,
        tol: float | None = None,
    ) -> CGResult:  # fmt: skip
        return base(_shifted(matvec, shift), b, x0=x0, iters=iters, tol=tol)

    solve.__name__ = f"{name}_solver"
    return solve
