"""``r2d2``: the Woodbury ridge head equals a direct solve; meta-gradient by finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers_head import check_directional, meta_grads, one_thread, tiny_learner, tiny_tasks  # noqa: F401
from test_batched import both_modes, rel_err
from torch import Tensor

from memcomp.learners.r2d2 import ridge_head


def direct_ridge(zs: Tensor, ys: Tensor, lam: Tensor, ways: int) -> Tensor:
    """Primal ridge solution ``(X^T X + lam I_{d+1})^{-1} X^T Y`` (no Woodbury)."""
    x = torch.cat([zs, torch.ones(zs.shape[0], 1, dtype=zs.dtype)], 1)
    y = F.one_hot(ys, ways).to(zs.dtype)
    a = x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(a, x.T @ y)


def reference_loss(learner, tasks) -> float:
    """Mean query CE with the primal ridge head, via torch.nn.functional only."""
    total = 0.0
    with torch.no_grad():
        for t in tasks:
            zs, zq = learner.backbone(t.xs), learner.backbone(t.xq)
            w = direct_ridge(zs, t.ys, learner.log_lam.exp(), learner.ways)
            xq = torch.cat([zq, torch.ones(zq.shape[0], 1, dtype=zq.dtype)], 1)
            logits = learner.scale * (xq @ w) + learner.shift
            total += float(F.cross_entropy(logits, t.yq)) / len(tasks)
    return total


@pytest.mark.parametrize(("n", "d"), [(6, 12), (15, 4)])  # n < d (Woodbury pays) and n > d
def test_woodbury_equals_direct_solve_values_and_gradients(n: int, d: int) -> None:
    gen = torch.Generator().manual_seed(0)
    zs = torch.randn(n, d, generator=gen, dtype=torch.float64, requires_grad=True)
    ys = torch.arange(n) % 3
    lam = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    w = ridge_head(zs, F.one_hot(ys, 3).double(), lam)
    ref = direct_ridge(zs, ys, lam, 3)
    torch.testing.assert_close(w, ref, rtol=1e-11, atol=1e-12)
    x = torch.cat([zs, torch.ones(n, 1, dtype=zs.dtype)], 1).detach()
    normal = x.T @ (x @ w.detach() - F.one_hot(ys, 3).double()) + lam.detach() * w.detach()
    assert float(normal.abs().max()) < 1e-11  # the normal equations hold
    probe = torch.randn(w.shape, generator=gen, dtype=torch.float64)
    g = torch.autograd.grad((w * probe).sum(), (zs, lam))
    g_ref = torch.autograd.grad((ref * probe).sum(), (zs, lam))
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_batched_ridge_head_equals_per_task() -> None:
    gen = torch.Generator().manual_seed(1)
    zs = torch.randn(4, 6, 5, generator=gen, dtype=torch.float64)
    y = F.one_hot(torch.arange(6) % 3, 3).double().expand(4, -1, -1)
    lam = torch.tensor(0.3, dtype=torch.float64)
    torch.testing.assert_close(
        ridge_head(zs, y, lam), torch.stack([ridge_head(z, y[0], lam) for z in zs])
    )


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_meta_gradient_matches_finite_differences(execution: str) -> None:
    learner = tiny_learner("r2d2", {"lam": 0.5, "execution": execution})
    tasks = tiny_tasks(2)
    params = learner.meta_parameters()
    assert any(p is learner.log_lam for p in params)
    grads = meta_grads(learner, tasks)
    stats = learner.meta_backward(tasks)
    assert float(stats.loss) == pytest.approx(reference_loss(learner, tasks), rel=1e-12)
    check_directional(lambda: reference_loss(learner, tasks), params, grads, rtol=1e-6)


def test_batched_equals_sequential_and_fixed_lambda() -> None:
    tasks = tiny_tasks(3, seed=5)
    (g_seq, s_seq), (g_bat, s_bat) = both_modes("r2d2", {"learn_lam": False}, tasks)
    assert rel_err(g_bat, g_seq) <= 1e-10
    torch.testing.assert_close(s_bat.loss, s_seq.loss, rtol=1e-12, atol=0)
    learner = tiny_learner("r2d2", {"learn_lam": False})
    assert all(p is not learner.log_lam for p in learner.meta_parameters())


def test_adapt_predict_is_the_ridge_head() -> None:
    learner = tiny_learner("r2d2", {"lam": 0.2})
    task = tiny_tasks(1)[0]
    logits = learner.adapt_predict(task)
    with torch.no_grad():
        zs, zq = learner.backbone(task.xs), learner.backbone(task.xq)
        w = direct_ridge(zs, task.ys, learner.log_lam.exp(), learner.ways)
        ref = torch.cat([zq, torch.ones(zq.shape[0], 1, dtype=zq.dtype)], 1) @ w
    assert float(learner.log_lam.detach().exp()) == pytest.approx(0.2, rel=1e-6)
    torch.testing.assert_close(logits, ref, rtol=1e-10, atol=1e-12)
