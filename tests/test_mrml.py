"""Algorithm 1 (mrml): exact implicit hypergradient, finite differences of F(theta), CG residual,
warm starts and the one-graph memory structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers_head import (
    ForwardCounter,
    autograd_gd,
    check_directional,
    meta_grads,
    one_thread,  # noqa: F401
    reg_ce,
    tiny_learner,
    tiny_tasks,
)
from pydantic import ValidationError
from torch import Tensor

from memcomp.learners import LEARNERS, Learner
from memcomp.numerics import head
from memcomp.numerics.cg import conjugate_gradient


def unpack(phi: Tensor, ways: int) -> tuple[Tensor, Tensor]:
    """Reference packing (independent of ``head.flatten``): W row-major, then b."""
    d = phi.numel() // ways - 1
    return phi[: ways * d].view(ways, d), phi[ways * d :]


def features(learner: Learner, task) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        return learner.backbone(task.xs), learner.backbone(task.xq)


def implicit_reference(learner: Learner, tasks, phis: list[Tensor], l2: float) -> list[Tensor]:
    """Mean over tasks of df/dtheta - (d2g/dtheta dphi) H^{-1} df/dphi at the given ``phis``,
    with an explicit autograd Hessian, ``torch.linalg.solve`` and an autograd mixed term."""
    ways, params = learner.ways, list(learner.backbone.parameters())
    total = [torch.zeros_like(p) for p in params]
    for task, phi in zip(tasks, phis, strict=True):
        zs, zq = features(learner, task)
        hess = torch.autograd.functional.hessian(
            lambda x, zs=zs, y=task.ys: reg_ce(zs, y, *unpack(x, ways), l2), phi
        )
        x = phi.clone().requires_grad_(True)
        (df_phi,) = torch.autograd.grad(F.cross_entropy(F.linear(zq, *unpack(x, ways)), task.yq), x)
        v = torch.linalg.solve(hess, df_phi)
        x = phi.clone().requires_grad_(True)
        zs_g, zq_g = learner.backbone(task.xs), learner.backbone(task.xq)
        (dg_phi,) = torch.autograd.grad(
            reg_ce(zs_g, task.ys, *unpack(x, ways), l2), x, create_graph=True
        )
        f = F.cross_entropy(F.linear(zq_g, *unpack(phi, ways)), task.yq)
        df = torch.autograd.grad(f, params, retain_graph=True)
        mixed = torch.autograd.grad((dg_phi * v).sum(), params, allow_unused=True)
        for t, a, m in zip(total, df, mixed, strict=True):
            t += (a - (0 if m is None else m)) / len(tasks)
    return total


def phi_after_gd(learner: Learner, task, steps: int, lr: float, l2: float) -> Tensor:
    zs, _ = features(learner, task)
    w, b = autograd_gd(zs, task.ys, learner.head.weight, learner.head.bias, steps, lr, l2)
    return torch.cat([w.flatten(), b])


def lower_solution(learner: Learner, task, l2: float) -> Tensor:
    """phi*(theta) to ~1e-13: gradient-descent warm-up, then Newton with an autograd Hessian."""
    zs, _ = features(learner, task)
    phi = phi_after_gd(learner, task, 100, 0.3, l2)
    for _ in range(8):

        def g(x: Tensor, zs: Tensor = zs) -> Tensor:
            return reg_ce(zs, task.ys, *unpack(x, learner.ways), l2)

        with torch.enable_grad():
            x = phi.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(g(x), x)
        phi = phi - torch.linalg.solve(torch.autograd.functional.hessian(g, phi), grad)
    assert grad.norm() < 1e-12
    return phi


def test_matches_exact_implicit_hypergradient_at_phi_k() -> None:
    l2, k = 0.01, 30
    learner = tiny_learner("mrml", {"inner_steps": k, "cg_steps": 60, "l2": l2})
    tasks = tiny_tasks(2)
    grads = meta_grads(learner, tasks)
    assert learner.head.weight.grad is None
    phis = [phi_after_gd(learner, t, k, 0.1, l2) for t in tasks]
    ref = implicit_reference(learner, tasks, phis, l2)
    scale = max(float(r.abs().max()) for r in ref)
    assert scale > 1e-3
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-9 * scale)


def test_cg_truncation_is_visible() -> None:
    """Few CG steps: a larger reported residual and a hypergradient away from the exact one."""
    tasks = tiny_tasks(2)
    res, grads = {}, {}
    for n in (2, 60):
        learner = tiny_learner("mrml", {"inner_steps": 10, "cg_steps": n})
        grads[n] = meta_grads(learner, tasks)
        res[n] = float(learner.meta_backward(tasks).cg_residual)
    assert res[60] < 1e-10 < 1e-2 < res[2]
    assert max(float((a - b).abs().max()) for a, b in zip(grads[2], grads[60], strict=True)) > 1e-4


def test_matches_finite_differences_of_the_bilevel_objective() -> None:
    """F(theta) = mean query CE at phi*(theta) (Newton-solved); mrml with K, N large."""
    l2 = 0.1
    params = {"inner_steps": 800, "inner_lr": 0.3, "cg_steps": 60, "l2": l2}
    learner = tiny_learner("mrml", params)
    tasks = tiny_tasks(2)
    grads = meta_grads(learner, tasks)
    meta = learner.meta_parameters()

    def objective() -> float:
        total = 0.0
        for t in tasks:
            _, zq = features(learner, t)
            w, b = unpack(lower_solution(learner, t, l2), learner.ways)
            total += float(F.cross_entropy(F.linear(zq, w, b), t.yq))
        return total / len(tasks)

    check_directional(objective, meta, grads, n_dirs=3, rtol=1e-5)


def test_unregularised_rank_deficient_reports_residual() -> None:
    """l2 = 0 and 1 shot: singular Hessian, df/dphi outside its range; no crash, residual shown."""
    tasks = tiny_tasks(2, shots=1)
    learner = tiny_learner("mrml", {"inner_steps": 10, "l2": 0.0})
    stats = learner.meta_backward(tasks)
    assert stats.cg_residual is not None and stats.cg_residual.shape == ()
    assert float(stats.cg_residual) > 1.0
    regularised = tiny_learner("mrml", {"inner_steps": 10, "l2": 0.01})
    assert float(regularised.meta_backward(tasks).cg_residual) < 1e-8


def test_warm_start_reuses_phi_and_v() -> None:
    k, l2 = 100, 0.05
    params = {"inner_steps": k, "cg_steps": 100, "cg_tol": 1e-12, "l2": l2, "warm_start": True}
    learner = tiny_learner("mrml", params)
    tasks = tiny_tasks(2)
    learner.meta_backward(tasks)
    assert sorted(learner.warm_state) == [0, 1]
    for slot, t in enumerate(tasks):
        w, b, _ = learner.warm_state[slot]
        rw, rb = unpack(phi_after_gd(learner, t, k, 0.1, l2), 3)
        torch.testing.assert_close((w, b), (rw, rb), rtol=0, atol=1e-12)
    warm_grads = meta_grads(learner, tasks)  # second call (theta unchanged)
    for slot, t in enumerate(tasks):
        w, b, v = learner.warm_state[slot]
        rw, rb = unpack(phi_after_gd(learner, t, 2 * k, 0.1, l2), 3)
        torch.testing.assert_close((w, b), (rw, rb), rtol=0, atol=1e-12)
        zs, zq = features(learner, t)
        rhs = head.flatten(*head.grad(zq, t.yq, w, b))
        hv = head.flatten(*head.hvp(zs, w, b, *head.unflatten(v, 3), l2))
        assert float((hv - rhs).norm() / rhs.norm()) <= 1e-12
    # equals a cold start with 2K head steps (CG solved tightly in both)
    cold = tiny_learner("mrml", {**params, "inner_steps": 2 * k, "warm_start": False})
    for a, b in zip(warm_grads, meta_grads(cold, tasks), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    assert cold.warm_state == {}
    learner.reset_warm_start()
    assert learner.warm_state == {}


def test_warm_start_cuts_cg_iterations() -> None:
    """Near the lower-level solution the previous v is a good start: CG stops sooner."""
    params = {"inner_steps": 200, "cg_steps": 100, "cg_tol": 1e-6, "l2": 0.3}
    tasks = tiny_tasks(2)
    iters = {}
    for warm in (False, True):
        learner = tiny_learner("mrml", {**params, "warm_start": warm})
        iters[warm] = []
        for _ in range(3):
            stats = learner.meta_backward(tasks)
            assert float(stats.cg_residual) <= 1e-6
            iters[warm].append(sum(learner.last_cg_iterations))
    assert iters[True][0] == iters[False][0]
    assert iters[True][2] < iters[True][1] < iters[True][0] <= iters[False][2]


@pytest.mark.parametrize(
    ("execution", "forwards"), [("sequential", (2 * 3, 2 * 3)), ("batched", (2, 0))]
)
def test_one_graph_forward_whatever_k_and_n(execution: str, forwards: tuple[int, int]) -> None:
    """Sequential: support and query once without and once with graph, per task. Batched: one
    graph forward of the support and one of the query images for all tasks, reused."""
    for k, n in ((1, 1), (25, 30)):
        params = {"inner_steps": k, "cg_steps": n, "execution": execution}
        learner = tiny_learner("mrml", params)
        counter = ForwardCounter(learner.backbone)
        learner.meta_backward(tiny_tasks(3))
        counter.remove()
        assert (counter.with_graph, counter.without_graph) == forwards


def test_loss_adapt_predict_and_float32() -> None:
    learner = tiny_learner("mrml", {"inner_steps": 7, "inner_lr": 0.2, "l2": 0.03})
    tasks = tiny_tasks(2)
    stats = learner.meta_backward(tasks)
    ces = []
    for t in tasks:
        w, b = unpack(phi_after_gd(learner, t, 7, 0.2, 0.03), 3)
        ces.append(float(F.cross_entropy(F.linear(features(learner, t)[1], w, b), t.yq)))
    assert abs(float(stats.loss) - sum(ces) / 2) < 1e-12 and not stats.loss.requires_grad
    logits = learner.adapt_predict(tasks[1])
    assert abs(float(F.cross_entropy(logits, tasks[1].yq)) - ces[1]) < 1e-12
    learner32 = learner.float()
    stats = learner32.meta_backward(tiny_tasks(2, dtype=torch.float32))
    assert stats.loss.dtype == torch.float32 and stats.cg_residual.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in learner32.meta_parameters())


def test_params() -> None:
    entry = LEARNERS.get("mrml")
    p = entry.params()
    assert (p.inner_steps, p.inner_lr, p.cg_steps, p.cg_tol, p.l2, p.warm_start) == (
        20,
        0.1,
        20,
        None,
        0.01,
        False,
    )
    for bad in ({"l2": -0.1}, {"cg_tol": 0.0}, {"cg_steps": -1}, {"features": "once"}):
        with pytest.raises(ValidationError):
            entry.params(**bad)


def test_cg_helper_agrees_with_solve() -> None:
    """The CG used by mrml solves the closed-form head system to the explicit-matrix answer."""
    learner = tiny_learner("mrml", {})
    t = tiny_tasks(1)[0]
    zs, zq = features(learner, t)
    w, b = learner.head.weight.detach(), learner.head.bias.detach()
    rhs = head.flatten(*head.grad(zq, t.yq, w, b))
    eye = torch.eye(rhs.numel(), dtype=rhs.dtype)
    cols = [head.flatten(*head.hvp(zs, w, b, *head.unflatten(e, 3), 0.01)) for e in eye]
    hess = torch.stack(cols, 1)
    res = conjugate_gradient(
        lambda x: head.flatten(*head.hvp(zs, w, b, *head.unflatten(x, 3), 0.01)), rhs, iters=60
    )
    torch.testing.assert_close(res.x, torch.linalg.solve(hess, rhs), rtol=0, atol=1e-10)
