"""Linear solvers chosen by a parameter (``make_solver``: cg, neumann) and the one ``flatten``:
float64 solutions against ``torch.linalg.solve``, the Neumann truncation bound ``rho^K``, no host
reads without a tolerance, and ``imaml`` / ``mrml`` meta-gradients with ``solver: neumann``
against the exact hypergradients of ``memcomp.diagnose.exact``."""

from __future__ import annotations

import pytest
import torch
from helpers_head import one_thread  # noqa: F401
from helpers_learners import make_learner, make_task, run_meta_backward
from pydantic import ValidationError
from torch import Tensor

from memcomp.diagnose.exact import head_hessian, head_hypergrad, proximal_hypergrad
from memcomp.learners.imaml import proximal_descent
from memcomp.learners.params import ImamlParams, MrmlParams
from memcomp.numerics import flat, head
from memcomp.numerics.solvers import make_solver
from memcomp.verify.hostsync import HostReads

DT = torch.float64


def spd(q: int, lo: float, hi: float, seed: int = 0) -> Tensor:
    """Random SPD matrix with eigenvalues spread over [lo, hi] (both ends included)."""
    gen = torch.Generator().manual_seed(seed)
    qmat, _ = torch.linalg.qr(torch.randn(q, q, generator=gen, dtype=DT))
    ev = torch.linspace(lo, hi, q, dtype=DT)
    return qmat @ torch.diag(ev) @ qmat.T


def systems(batch: int = 3, q: int = 7) -> tuple[Tensor, Tensor]:
    a = torch.stack([spd(q, 0.5, 2.0, seed=s) for s in range(batch)])
    b = torch.randn(batch, q, generator=torch.Generator().manual_seed(9), dtype=DT)
    return a, b


def batched_matvec(a: Tensor):
    return lambda v: (a @ v.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize(
    ("name", "opts", "iters"), [("cg", {}, 7), ("neumann", {"alpha": 0.8}, 400)]
)
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_each_solver_matches_linalg_solve(name: str, opts: dict, iters: int, shift: float) -> None:
    a, b = systems()
    exact = torch.linalg.solve(a + shift * torch.eye(a.shape[-1], dtype=DT), b)
    solve = make_solver(name, shift=shift, **opts)
    res = solve(batched_matvec(a), b, iters=iters)
    torch.testing.assert_close(res.x, exact, rtol=0, atol=1e-11)
    assert float(res.residual.max()) < 1e-11
    one = solve(lambda v: a[1] @ v, b[1], iters=iters)  # unbatched
    torch.testing.assert_close(one.x, exact[1], rtol=0, atol=1e-11)


@pytest.mark.parametrize("terms", [5, 20, 60])
def test_neumann_error_follows_rho_to_the_k(terms: int) -> None:
    """x_K - x* = -(I - alpha A)^K x*: the relative error is at most rho^K, rho = max|1 - alpha
    lambda|, and (with eigenvalues at both ends of the spectrum) within a factor 3 of it."""
    a, b = systems(batch=1)
    alpha = 0.5
    ev = torch.linalg.eigvalsh(a[0])
    rho = float((1 - alpha * ev).abs().max())
    exact = torch.linalg.solve(a, b)
    res = make_solver("neumann", alpha=alpha)(batched_matvec(a), b, iters=terms)
    rel = float((res.x - exact).norm() / exact.norm())
    assert rel <= rho**terms * (1 + 1e-9)
    assert rel >= rho**terms / 50  # the bound is the rate, not a loose overestimate
    assert res.iterations == terms


def test_solvers_read_nothing_back_without_a_tolerance() -> None:
    a, b = systems()
    for name, opts in (("cg", {}), ("neumann", {"alpha": 0.8})):
        solve = make_solver(name, **opts)
        with HostReads() as reads:
            solve(batched_matvec(a), b, iters=5)
        assert reads.count == 0, name
        with HostReads() as reads:
            res = solve(batched_matvec(a), b, iters=5, tol=1e-30)
        assert reads.count == res.iterations == 5, name  # one read per step with a tolerance


def test_make_solver_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unknown solver 'gmres'"):
        make_solver("gmres")
    with pytest.raises(ValueError, match="alpha > 0"):
        make_solver("neumann")
    with pytest.raises(ValueError, match="cg takes no options"):
        make_solver("cg", alpha=0.1)


def test_neumann_alpha_only_with_solver_neumann() -> None:
    for model in (ImamlParams, MrmlParams):
        with pytest.raises(ValidationError, match="neumann_alpha is the step of solver neumann"):
            model(neumann_alpha=0.2)
        assert model(solver="neumann", neumann_alpha=0.2).neumann_alpha == 0.2


def test_one_flatten_round_trips_lists_batches_and_the_head() -> None:
    ts = [torch.randn(2, 3, dtype=DT), torch.randn((), dtype=DT), torch.randn(4, dtype=DT)]
    v = flat.flatten(ts)
    assert v.shape == (11,) and torch.equal(v[:6], ts[0].reshape(-1))
    assert all(torch.equal(x, y) for x, y in zip(flat.unflatten(v, ts), ts, strict=True))
    bs = [torch.randn(5, 2, 3, dtype=DT), torch.randn(5, dtype=DT)]
    m = flat.batch_flatten(bs)
    assert m.shape == (5, 7) and torch.equal(m[2], flat.flatten([bs[0][2], bs[1][2]]))
    assert all(torch.equal(x, y) for x, y in zip(flat.batch_unflatten(m, bs), bs, strict=True))
    assert head.flatten is flat.flatten_head and head.unflatten is flat.unflatten_head


# ------------------------------------------------------------------ meta-gradients, float64

IMAML = {"inner_steps": 3, "inner_lr": 0.1, "lam": 4.0}


def imaml_bound(learner, tasks, terms: int, alpha: float) -> tuple[float, Tensor]:
    """(max rho over tasks, sum_t rho_t^K ||x_t*||) for ``(I + H_t/lam) x = g_t`` at phi_K."""
    named = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    lam, rhos, total = IMAML["lam"], [], torch.zeros((), dtype=DT)

    def loss(v: Tensor, x: Tensor, y: Tensor) -> Tensor:
        parts = dict(zip(names, flat.unflatten(v, [p for _, p in named]), strict=True))
        return torch.nn.functional.cross_entropy(
            torch.func.functional_call(learner, parts, (x,)), y
        )

    for t in tasks:
        phi = flat.flatten(
            proximal_descent(
                lambda ps, t=t: loss(flat.flatten(ps), t.xs, t.ys),
                [p.detach() for _, p in named], lam, IMAML["inner_steps"], IMAML["inner_lr"],
            )
        )  # fmt: skip
        with torch.enable_grad():
            hess = torch.autograd.functional.hessian(lambda v, t=t: loss(v, t.xs, t.ys), phi)
            x = phi.detach().requires_grad_()
            (gq,) = torch.autograd.grad(loss(x, t.xq, t.yq), x)
        a = torch.eye(len(phi), dtype=DT) + hess / lam
        rho = float((1 - alpha * torch.linalg.eigvalsh(a)).abs().max())
        rhos.append(rho)
        total = total + rho**terms * torch.linalg.solve(a, gq).norm()
    return max(rhos), total / len(tasks)


@pytest.mark.parametrize("terms", [8, 40, 400])
def test_imaml_neumann_meta_gradient_within_the_truncation_bound(terms: int) -> None:
    """Against the exact solve at the learner's own phi_K (``proximal_hypergrad``): the mean of
    the tasks' errors is at most mean_t rho_t^K ||x_t*||, relative to the exact meta-gradient."""
    params = {**IMAML, "cg_steps": terms, "solver": "neumann", "execution": "batched"}
    learner = make_learner("imaml", params)
    tasks = [make_task(s) for s in (11, 12)]
    got = run_meta_backward(learner, tasks)
    ref = proximal_hypergrad(learner, tasks, IMAML["lam"], IMAML["inner_steps"], 0.1)
    alpha = IMAML["inner_lr"] * IMAML["lam"]  # the default neumann_alpha
    rho, bound = imaml_bound(learner, tasks, terms, alpha)
    assert rho < 1  # the series converges at this lam
    rel = float((got - ref).norm() / ref.norm())
    rel_bound = float(bound / ref.norm())
    print(f"imaml K={terms}: rel {rel:.3g} bound {rel_bound:.3g} rho {rho:.3g}")
    assert rel <= rel_bound * 1.01 + 1e-12, (rel, rel_bound)
    if terms == 400:
        assert rel < 1e-11
    else:
        assert rel > rel_bound / 1e3  # truncation is visible: the bound is the rate


MRML = {"inner_steps": 800, "inner_lr": 0.5, "l2": 0.1}


def mrml_bound(learner, tasks, terms: int, alpha: float) -> tuple[float, float]:
    """(max rho, mean_t ||J_t||_2 rho_t^K ||v_t*||), J_t = d2g/dtheta dphi at phi_t*: the
    meta-gradient is df/dtheta - J v, so its error is J (v* - v_K)."""
    params, rhos, total = learner.meta_parameters(), [], 0.0
    for t in tasks:
        with torch.no_grad():
            zs, zq = learner.backbone(t.xs), learner.backbone(t.xq)
        w, b = head.gd(zs, t.ys, learner.head.weight, learner.head.bias, 800, 0.5, MRML["l2"])
        hess = head_hessian(zs, w, b, MRML["l2"])
        rho = float((1 - alpha * torch.linalg.eigvalsh(hess)).abs().max())
        v = torch.linalg.solve(hess, head.flatten(*head.grad(zq, t.yq, w, b)))
        with torch.enable_grad():
            g = head.flatten(*head.grad(learner.backbone(t.xs), t.ys, w, b))
            cols = [flat.flatten(torch.autograd.grad(g[i], params, retain_graph=True))
                    for i in range(len(g))]  # fmt: skip
        jnorm = float(torch.linalg.matrix_norm(torch.stack(cols, 1), 2))
        rhos.append(rho)
        total += jnorm * rho**terms * float(v.norm()) / len(tasks)
    return max(rhos), total


@pytest.mark.parametrize("execution", ["batched", "sequential"])
@pytest.mark.parametrize("terms", [10, 40, 400])
def test_mrml_neumann_meta_gradient_within_the_truncation_bound(terms: int, execution: str) -> None:
    """Against the exact implicit hypergradient (lower level solved by Newton, direct solve):
    error <= the Neumann bound plus the floor left by the K head steps (measured with CG run to
    convergence at the same K)."""
    tasks = [make_task(s) for s in (11, 12)]
    common = {**MRML, "execution": execution}
    learner = make_learner("mrml", {**common, "cg_steps": terms, "solver": "neumann"})
    got = run_meta_backward(learner, tasks)
    ref = head_hypergrad(learner, tasks, MRML["l2"])
    floor_learner = make_learner("mrml", {**common, "cg_steps": 80})
    floor = float((run_meta_backward(floor_learner, tasks) - ref).norm() / ref.norm())
    assert floor < 1e-10
    rho, bound = mrml_bound(learner, tasks, terms, MRML["inner_lr"])
    assert rho < 1
    rel, rel_bound = float((got - ref).norm() / ref.norm()), bound / float(ref.norm())
    print(f"mrml {execution} K={terms}: rel {rel:.3g} bound {rel_bound:.3g} floor {floor:.3g}")
    assert rel <= rel_bound * 1.01 + 2 * floor, (rel, rel_bound, floor)
    if terms == 400:  # rho ~ 1 - inner_lr * l2 = 0.95: 0.95^400 ~ 1e-9
        assert rel < 1e-8
    else:
        assert rel > 1e-6  # truncated: a real error, which the bound covers


def test_solver_keys_leave_existing_cell_ids_alone() -> None:
    """``solver`` and ``neumann_alpha`` were added later: at their defaults (given or not) the
    cell id is the one hashed without them; another solver is another cell."""
    from memcomp.config.cells import Cell, Component, from_json, to_json
    from memcomp.config.settings import Setting, TestConfig, TrainConfig

    def cell(**learner: object) -> Cell:
        return Cell(
            suite="s",
            dataset=Component("omniglot", {"image_size": 28}),
            setting=Setting(ways=3),
            backbone=Component("conv4", {"hidden": 8}),
            learner=Component("mrml", {"inner_steps": 3, **learner}),
            train=TrainConfig(),
            test=TestConfig(episodes=10),
            seed=2,
        )

    old = cell()
    assert not {"solver", "neumann_alpha"} & set(old.config()["learner"])
    assert cell(solver="cg").id == old.id == cell(solver="cg", neumann_alpha=None).id
    neumann = cell(solver="neumann")
    assert neumann.id != old.id != cell(solver="neumann", neumann_alpha=0.05).id != neumann.id
    assert from_json(to_json(neumann)).id == neumann.id
    assert neumann.learner.params["solver"] == "neumann"  # the row's learner.solver column
