"""Numerics of ``imaml``: exact quadratic lower levels and the explicit Hessian of a tiny Conv4."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from helpers_learners import (
    flat_params,
    make_learner,
    make_task,
    ref_grad_at,
    ref_prox,
    run_meta_backward,
    support_hessian,
)
from torch import Tensor, nn

from memcomp.learners.imaml import Imaml, proximal_descent
from memcomp.learners.params import ImamlParams
from memcomp.numerics.hvp import flatten, implicit_solve, unflatten
from memcomp.types import Task

DT = torch.float64


def random_sym(q: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    """Random symmetric matrix with eigenvalues uniform in [lo, hi]."""
    qmat, _ = torch.linalg.qr(torch.randn(q, q, generator=gen, dtype=DT))
    ev = lo + (hi - lo) * torch.rand(q, generator=gen, dtype=DT)
    return qmat @ torch.diag(ev) @ qmat.T


@dataclass
class QuadTask(Task):
    """A task whose support loss is 0.5 (phi - c)' A (phi - c) and query loss is smooth."""

    a: Tensor = None  # type: ignore[assignment]
    c: Tensor = None  # type: ignore[assignment]
    d: Tensor = None  # type: ignore[assignment]


def query_fn(phi: Tensor, d: Tensor) -> Tensor:
    return torch.sin(phi).sum() + 0.5 * ((phi - d) ** 2).sum() + (phi * d).sum() ** 2 / 10


class QuadImaml(Imaml):
    """iMAML whose losses are explicit functions of the flat parameter vector."""

    def support_loss(self, params: dict[str, Tensor], task: Task) -> Tensor:
        phi = flatten(list(params.values())) - task.c
        return 0.5 * phi @ task.a @ phi

    def query_loss(self, params: dict[str, Tensor], task: Task) -> Tensor:
        return query_fn(flatten(list(params.values())), task.d)


class TinyBackbone(nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)
        self.feat_dim = 2


def quad_setup(lam: float, lo: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        learner = QuadImaml(
            TinyBackbone(),
            3,
            ImamlParams(inner_steps=300, inner_lr=0.25, lam=lam, cg_steps=60, cg_tol=None),
        ).to(DT)
    q = flat_params(learner).numel()  # 6 + 9 = 15
    empty = torch.zeros(0)
    tasks = [
        QuadTask(
            empty,
            empty,
            empty,
            empty,
            a=random_sym(q, lo, 2.0, gen),
            c=torch.randn(q, generator=gen, dtype=DT),
            d=torch.randn(q, generator=gen, dtype=DT),
        )
        for _ in range(2)
    ]
    return learner, tasks, q


@pytest.mark.parametrize("lo", [0.5, -0.6])  # SPD, and indefinite A with I + A/lam still PD
def test_quadratic_lower_level_matches_closed_form(lo):
    lam = 1.5
    learner, tasks, q = quad_setup(lam, lo)
    grad = run_meta_backward(learner, tasks)
    theta = flat_params(learner)
    eye = torch.eye(q, dtype=DT)
    closed, through_solve = [], []
    for t in tasks:
        # exact proximal solution and the closed-form iMAML meta-gradient at it
        phi_star = torch.linalg.solve(t.a + lam * eye, t.a @ t.c + lam * theta)
        phi_var = phi_star.clone().requires_grad_()
        (gq,) = torch.autograd.grad(query_fn(phi_var, t.d), phi_var)
        closed.append(torch.linalg.solve(eye + t.a / lam, gq))
        # ... and the true derivative of L_q(phi*(theta)), by autograd through the solve
        th = theta.clone().requires_grad_()
        loss = query_fn(torch.linalg.solve(t.a + lam * eye, t.a @ t.c + lam * th), t.d)
        through_solve.append(torch.autograd.grad(loss, th)[0])
    expected = torch.stack(closed).mean(0)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, torch.stack(through_solve).mean(0), rtol=1e-10, atol=1e-12)


def test_implicit_solve_explicit_quadratic_and_cg_residual():
    gen = torch.Generator().manual_seed(3)
    q, lam = 12, 0.7
    a = random_sym(q, -0.5, 3.0, gen)
    b = torch.randn(q, generator=gen, dtype=DT)
    shapes = [torch.zeros(3, 2, dtype=DT), torch.zeros(6, dtype=DT)]
    phi = unflatten(torch.randn(q, generator=gen, dtype=DT), shapes)

    def loss(ps: list[Tensor]) -> Tensor:
        x = flatten(ps)
        return 0.5 * x @ a @ x + b @ x + torch.cos(b @ b)  # Hessian a everywhere

    g = torch.randn(q, generator=gen, dtype=DT)
    exact = torch.linalg.solve(torch.eye(q, dtype=DT) + a / lam, g)
    res = implicit_solve(loss, phi, g, lam, iters=100, tol=1e-13)
    assert res.iterations <= q + 2
    torch.testing.assert_close(res.x, exact, rtol=1e-10, atol=1e-12)
    assert res.residual < 1e-12
    few = implicit_solve(loss, phi, g, lam, iters=2)
    assert few.iterations == 2 and few.residual > 1e-4


def test_implicit_solve_without_curvature_returns_rhs():
    phi = [torch.ones(4, dtype=DT)]
    g = torch.arange(4, dtype=DT)
    res = implicit_solve(lambda ps: (ps[0] * 3).sum(), phi, g, lam=2.0, iters=3)
    torch.testing.assert_close(res.x, g)


def test_proximal_descent_converges_to_proximal_point():
    gen = torch.Generator().manual_seed(4)
    q, lam = 5, 0.8
    a = random_sym(q, 0.2, 1.5, gen)
    c = torch.randn(q, generator=gen, dtype=DT)
    theta = torch.randn(q, generator=gen, dtype=DT, requires_grad=True)
    (phi,) = proximal_descent(
        lambda ps: 0.5 * (ps[0] - c) @ a @ (ps[0] - c), [theta], lam, steps=400, lr=0.4
    )
    assert not phi.requires_grad
    expected = torch.linalg.solve(a + lam * torch.eye(q, dtype=DT), a @ c + lam * theta.detach())
    torch.testing.assert_close(phi, expected, rtol=1e-12, atol=1e-12)


def test_conv_model_many_cg_steps_match_explicit_hessian_solve():
    # lam=4 keeps I + H/lam positive definite here: the Hessian of the support loss of a
    # BatchNorm conv net is indefinite (smallest eigenvalue about -3.5 for these tasks).
    lam, k, lr = 4.0, 5, 0.1
    learner = make_learner(
        "imaml",
        {"inner_steps": k, "inner_lr": lr, "lam": lam, "cg_steps": 400, "cg_tol": 1e-13},
    )
    tasks = [make_task(11), make_task(12)]
    learner.zero_grad(set_to_none=True)
    stats = learner.meta_backward(tasks)
    grad = torch.cat([p.grad.reshape(-1) for p in learner.meta_parameters()])
    assert stats.cg_residual is not None and stats.cg_residual < 1e-12
    theta = flat_params(learner)
    eye = torch.eye(theta.numel(), dtype=DT)
    sols = []
    for t in tasks:
        phi = ref_prox(learner, theta, t, k, lr, lam)
        h = support_hessian(learner, phi, t)
        system = eye + (h + h.T) / (2 * lam)
        assert torch.linalg.eigvalsh(system).min() > 0.05
        sols.append(torch.linalg.solve(system, ref_grad_at(learner, phi, t)))
    expected = torch.stack(sols).mean(0)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-11)


def test_fixed_cg_steps_residual_reported_and_decreasing():
    tasks = [make_task(21)]
    res = []
    for n in (1, 3, 12):
        learner = make_learner("imaml", {"lam": 4.0, "cg_steps": n})
        learner.zero_grad(set_to_none=True)
        res.append(learner.meta_backward(tasks).cg_residual)
    assert all(r.ndim == 0 for r in res)
    assert res[0] > res[1] > res[2]


def test_damping_solves_the_damped_system_exactly() -> None:
    """``damping`` adds ``damping * I``: CG matches solve((1 + d) I + A/lam, g) on a quadratic."""
    import torch

    from memcomp.learners.imaml import implicit_solve

    gen = torch.Generator().manual_seed(3)
    m = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    a = m @ m.T - 2.0 * torch.eye(6, dtype=torch.float64)  # indefinite Hessian
    g = torch.randn(6, generator=gen, dtype=torch.float64)
    phi = [torch.randn(6, generator=gen, dtype=torch.float64)]
    lam, d = 2.0, 1.5

    def loss(ps: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * ps[0] @ a @ ps[0]

    sol = implicit_solve(loss, phi, g, lam, iters=50, tol=1e-14, damping=d)
    want = torch.linalg.solve((1 + d) * torch.eye(6, dtype=torch.float64) + a / lam, g)
    torch.testing.assert_close(sol.x, want, rtol=1e-10, atol=1e-12)
