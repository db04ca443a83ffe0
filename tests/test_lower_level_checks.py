"""Convergence made visible: the lower-level gradient norm of the implicit learners, and the
unstable iMAML inner loop refused at validation."""

from __future__ import annotations

import pytest
import torch
from helpers_head import one_thread, tiny_learner, tiny_tasks  # noqa: F401
from pydantic import ValidationError

from memcomp.learners import LEARNERS, StepStats
from memcomp.learners.convergence import divergence_reason
from memcomp.numerics import head
from memcomp.numerics.cg import conjugate_gradient


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_mrml_reports_the_head_gradient_norm_at_phi_k(execution: str) -> None:
    tasks = tiny_tasks(2)
    norms = []
    for k in (2, 50):
        learner = tiny_learner(
            "mrml", {"inner_steps": k, "inner_lr": 0.5, "l2": 0.1, "execution": execution}
        )
        norms.append(float(learner.meta_backward(tasks).lower_grad_norm))
    learner = tiny_learner("mrml", {"inner_steps": 2, "inner_lr": 0.5, "l2": 0.1})
    ref = []
    with torch.no_grad():
        for t in tasks:
            zs = learner.backbone(t.xs)
            w, b = head.gd(zs, t.ys, learner.head.weight, learner.head.bias, 2, 0.5, 0.1)
            ref.append(head.sq_norm(*head.grad(zs, t.ys, w, b, 0.1)).sqrt())
    assert norms[0] == pytest.approx(float(torch.stack(ref).mean()), rel=1e-10)
    assert norms[1] < norms[0] / 10


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_imaml_reports_the_last_proximal_gradient_norm(execution: str) -> None:
    tasks = tiny_tasks(2)
    out = {}
    for k in (0, 1, 30):
        learner = tiny_learner(
            "imaml", {"inner_steps": k, "inner_lr": 0.05, "lam": 2.0, "execution": execution}
        )
        out[k] = learner.meta_backward(tasks).lower_grad_norm
    assert out[0] is None
    assert float(out[30]) < float(out[1])  # the step-1 gradient is the support gradient at theta


def test_imaml_unstable_proximal_steps_are_a_validation_error() -> None:
    model = LEARNERS.get("imaml").params
    with pytest.raises(ValidationError, match="inner_lr \\* lam = 2 >= 2"):
        model(inner_lr=0.5, lam=4.0)
    assert model(inner_lr=0.5, lam=3.9).lam == 3.9


def test_truncated_cg_on_a_well_posed_system_is_not_divergence() -> None:
    """3 CG steps with l2 = 0.01: residual above 1 (CG's residual is not monotone), fine."""
    stats = tiny_learner("mrml", {"inner_steps": 5, "cg_steps": 3}).meta_backward(tiny_tasks(2))
    assert float(stats.cg_residual) > 1
    assert divergence_reason(stats) is None


def test_singular_head_system_is_reported_as_divergence() -> None:
    """mrml without L2 and 1 shot: the head Hessian is singular; with L2 it is not."""
    tasks = tiny_tasks(2, shots=1)
    bad = tiny_learner("mrml", {"inner_steps": 5, "cg_steps": 30, "l2": 0.0})
    stats = bad.meta_backward(tasks)
    reason = divergence_reason(stats)
    assert reason is not None and ("residual" in reason or "curvature" in reason)
    assert "raise l2" in reason
    good = tiny_learner("mrml", {"inner_steps": 5, "cg_steps": 30, "l2": 0.1})
    stats = good.meta_backward(tasks)
    assert divergence_reason(stats) is None
    assert 1e-6 < float(stats.cg_curvature) <= 1


def test_divergence_reason_thresholds() -> None:
    one = torch.tensor(1.0)
    assert divergence_reason(StepStats(loss=one)) is None
    assert divergence_reason(StepStats(loss=one, cg_residual=torch.tensor(5.0))) is None
    assert "residual 300" in divergence_reason(StepStats(loss=one, cg_residual=torch.tensor(300.0)))
    assert "residual nan" in divergence_reason(
        StepStats(loss=one, cg_residual=torch.tensor(float("nan")))
    )
    for c in (3e-13, -3e-33, float("nan")):
        low = StepStats(loss=one, cg_residual=torch.tensor(0.1), cg_curvature=torch.tensor(c))
        assert "curvature collapsed" in divergence_reason(low)
    indefinite = StepStats(loss=one, cg_residual=torch.tensor(0.1), cg_curvature=torch.tensor(-0.6))
    assert divergence_reason(indefinite) is None  # left to the residual limit


def test_cg_curvature_of_spd_and_indefinite_systems() -> None:
    a = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    b = torch.ones(3, dtype=torch.float64)
    res = conjugate_gradient(lambda v: a @ v, b, iters=3)
    assert 1 / 9 - 1e-12 <= float(res.curvature) <= 1  # Rayleigh quotients lie in [1, 9]
    indefinite = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    res = conjugate_gradient(lambda v: indefinite @ v, b, iters=3)
    assert float(res.curvature) <= 0
    assert float(conjugate_gradient(lambda v: a @ v, b, iters=0).curvature) == 1.0
