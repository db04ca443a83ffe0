"""``memcomp.numerics.cg.conjugate_gradient`` against ``torch.linalg.solve`` on SPD systems."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from memcomp.numerics.cg import conjugate_gradient

DT = torch.float64


def spd(q: int, gen: torch.Generator, batch: tuple[int, ...] = (), cond: float = 20.0) -> Tensor:
    """Random SPD matrices with eigenvalues in [1, cond]."""
    qmat, _ = torch.linalg.qr(torch.randn(*batch, q, q, generator=gen, dtype=DT))
    ev = 1 + (cond - 1) * torch.rand(*batch, q, generator=gen, dtype=DT)
    return qmat @ torch.diag_embed(ev) @ qmat.transpose(-1, -2)


def matvec_of(a: Tensor):
    return lambda v: (a @ v.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("batch", [(), (4,)])
def test_fixed_iterations_solve_exactly(batch):
    gen = torch.Generator().manual_seed(0)
    q = 8
    a = spd(q, gen, batch)
    b = torch.randn(*batch, q, generator=gen, dtype=DT)
    res = conjugate_gradient(matvec_of(a), b, iters=3 * q)
    assert res.iterations == 3 * q and res.x.shape == b.shape
    assert res.residual.shape == batch
    torch.testing.assert_close(res.x, torch.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    assert (res.residual < 1e-11).all()


def test_batched_equals_one_system_at_a_time():
    gen = torch.Generator().manual_seed(1)
    a = spd(10, gen, (3,))
    b = torch.randn(3, 10, generator=gen, dtype=DT)
    batched = conjugate_gradient(matvec_of(a), b, iters=4)
    for i in range(3):
        one = conjugate_gradient(matvec_of(a[i]), b[i], iters=4)
        torch.testing.assert_close(batched.x[i], one.x, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(batched.residual[i], one.residual, rtol=1e-10, atol=1e-14)


def test_residual_is_true_relative_residual_and_decreases():
    gen = torch.Generator().manual_seed(2)
    a = spd(30, gen, cond=1e3)
    b = torch.randn(30, generator=gen, dtype=DT)
    prev = float("inf")
    for n in (1, 5, 15):
        res = conjugate_gradient(matvec_of(a), b, iters=n)
        true = (a @ res.x - b).norm() / b.norm()
        torch.testing.assert_close(res.residual, true, rtol=1e-12, atol=0)
        assert true < prev
        prev = true


@pytest.mark.parametrize("batch", [(), (3,)])
def test_tolerance_mode_stops_early(batch):
    gen = torch.Generator().manual_seed(3)
    q = 40
    a = spd(q, gen, batch, cond=5.0)
    b = torch.randn(*batch, q, generator=gen, dtype=DT)
    res = conjugate_gradient(matvec_of(a), b, iters=200, tol=1e-8)
    assert 0 < res.iterations < q
    assert (res.residual <= 1e-8 * 1.01).all()
    torch.testing.assert_close(res.x, torch.linalg.solve(a, b), rtol=1e-6, atol=1e-7)


def test_warm_start():
    gen = torch.Generator().manual_seed(4)
    q = 20
    a = spd(q, gen, cond=100.0)
    b = torch.randn(q, generator=gen, dtype=DT)
    exact = torch.linalg.solve(a, b)
    # starting at the solution: nothing to do in tolerance mode
    at = conjugate_gradient(matvec_of(a), b, x0=exact, iters=10, tol=1e-10)
    assert at.iterations == 0 and at.residual < 1e-12
    torch.testing.assert_close(at.x, exact, rtol=0, atol=0)
    # starting near it beats a cold start with the same budget
    near = exact + 1e-5 * torch.randn(q, generator=gen, dtype=DT)
    warm = conjugate_gradient(matvec_of(a), b, x0=near, iters=3)
    cold = conjugate_gradient(matvec_of(a), b, iters=3)
    assert warm.residual < 1e-2 * cold.residual
    # x0 is not modified
    near_copy = near.clone()
    conjugate_gradient(matvec_of(a), b, x0=near, iters=3)
    assert torch.equal(near, near_copy)


@pytest.mark.parametrize("tol", [None, 1e-10])
def test_already_solved_no_nan(tol):
    gen = torch.Generator().manual_seed(5)
    a = spd(6, gen, (2,))
    b = torch.randn(2, 6, generator=gen, dtype=DT)
    b[0] = 0.0  # first system trivially solved by x = 0
    res = conjugate_gradient(matvec_of(a), b, iters=15, tol=tol)
    assert torch.isfinite(res.x).all() and torch.isfinite(res.residual).all()
    assert torch.equal(res.x[0], torch.zeros(6, dtype=DT))
    assert res.residual[0] == 0
    torch.testing.assert_close(res.x[1], torch.linalg.solve(a[1], b[1]), rtol=1e-9, atol=1e-11)
    # exact warm start with fixed iterations: stays put, no NaN
    exact = torch.linalg.solve(a, b)
    again = conjugate_gradient(matvec_of(a), b, x0=exact, iters=5)
    assert torch.isfinite(again.x).all()
    torch.testing.assert_close(again.x, exact, rtol=1e-10, atol=1e-12)


def test_float32_runs():
    gen = torch.Generator().manual_seed(6)
    a = spd(10, gen).float()
    b = torch.randn(10, generator=gen).float()
    res = conjugate_gradient(matvec_of(a), b, iters=30)
    assert res.x.dtype == torch.float32
    torch.testing.assert_close(res.x, torch.linalg.solve(a, b), rtol=1e-4, atol=1e-4)
