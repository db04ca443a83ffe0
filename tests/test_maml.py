"""Numerics of ``maml`` / ``fomaml`` (float64, tiny Conv4 with BatchNorm) and learner contracts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pydantic
import pytest
import torch
from helpers_learners import (
    WAYS,
    assert_matches_central_fd,
    flat_grad,
    flat_params,
    make_learner,
    make_task,
    meta_named,
    ref_grad_at,
    ref_logits,
    ref_prox,
    ref_query_loss,
    ref_sgd,
    run_meta_backward,
)

from memcomp.learners import LEARNERS, build_learner
from memcomp.measure.phases import active_meter

K, LR = 3, 0.4
ALL = ["maml", "fomaml", "imaml"]  # the all-weights learners of this file


def outer_objective(learner, flat, tasks, steps=K, lr=LR) -> torch.Tensor:
    """Mean query loss after ``steps`` SGD steps from ``flat`` (values only)."""
    losses = [ref_query_loss(learner, ref_sgd(learner, flat, t, steps, lr), t) for t in tasks]
    return torch.stack(losses).mean()


@pytest.fixture
def tasks():
    return [make_task(1), make_task(2)]


def test_maml_matches_finite_differences(tasks):
    learner = make_learner("maml", {"inner_steps": K, "inner_lr": LR})
    grad = run_meta_backward(learner, tasks)
    assert_matches_central_fd(
        grad, flat_params(learner), lambda theta: outer_objective(learner, theta, tasks)
    )


def test_maml_matches_finite_differences_per_coordinate(tasks):
    learner = make_learner("maml", {"inner_steps": 2, "inner_lr": LR})
    grad = run_meta_backward(learner, tasks)
    theta = flat_params(learner)
    eps = 1e-6
    big = torch.argsort(grad.abs(), descending=True)[:4].tolist()
    for i in big + [len(theta) - 1]:  # largest entries, and the last head bias
        e = torch.zeros_like(theta)
        e[i] = eps
        fd = (
            outer_objective(learner, theta + e, tasks, 2)
            - outer_objective(learner, theta - e, tasks, 2)
        ) / (2 * eps)
        assert abs(fd - grad[i]) <= 1e-6 * abs(grad[i]) + 1e-10, (i, fd.item(), grad[i].item())


def test_fomaml_is_first_order_formula_and_differs_from_maml(tasks):
    fo = make_learner("fomaml", {"inner_steps": K, "inner_lr": LR})
    so = make_learner("maml", {"inner_steps": K, "inner_lr": LR})
    g_fo = run_meta_backward(fo, tasks)
    g_so = run_meta_backward(so, tasks)
    theta = flat_params(fo)
    assert torch.equal(theta, flat_params(so))
    adapted = [ref_sgd(fo, theta, t, K, LR) for t in tasks]
    expected = torch.stack(
        [ref_grad_at(fo, a, t) for a, t in zip(adapted, tasks, strict=True)]
    ).mean(0)
    torch.testing.assert_close(g_fo, expected, rtol=1e-12, atol=1e-14)
    assert (g_fo - g_so).norm() > 1e-2 * g_so.norm()


def test_zero_inner_steps_maml_equals_fomaml(tasks):
    g = [run_meta_backward(make_learner(n, {"inner_steps": 0}), tasks) for n in ("maml", "fomaml")]
    torch.testing.assert_close(g[0], g[1], rtol=1e-13, atol=1e-15)


# Gradients only on meta-parameters, determinism, mean over tasks and accumulation into .grad are
# checked for EVERY registered learner in tests/test_learner_contract.py.


@pytest.mark.parametrize("name", ALL)
def test_float32_step_stats(name, tasks):
    learner = make_learner(name, dtype=torch.float32)
    t32 = [t.to("cpu", torch.float32) for t in tasks]
    learner.zero_grad(set_to_none=True)
    stats = learner.meta_backward(t32)
    assert stats.loss.dtype == torch.float32 and stats.loss.ndim == 0
    assert not stats.loss.requires_grad and torch.isfinite(stats.loss)
    assert (stats.cg_residual is not None) == (name == "imaml")
    assert all(torch.isfinite(p.grad).all() for p in learner.meta_parameters())
    if name != "imaml":  # the loss reported is the mean query loss after K SGD steps
        theta = flat_params(learner)
        adapted = [ref_sgd(learner, theta, t, 5, 0.4) for t in t32]
        expected = torch.stack(
            [ref_query_loss(learner, a, t) for a, t in zip(adapted, t32, strict=True)]
        )
        torch.testing.assert_close(stats.loss, expected.mean(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["maml", "fomaml"])
def test_adapt_predict_maml(name):
    learner = make_learner(name, {"inner_steps": 1, "test_inner_steps": 4, "inner_lr": 0.3})
    task = make_task(5)
    before = flat_params(learner)
    with torch.no_grad():
        logits = learner.adapt_predict(task)
    assert logits.shape == (len(task.yq), WAYS) and not logits.requires_grad
    assert torch.equal(before, flat_params(learner))
    assert all(p.grad is None for _, p in meta_named(learner))
    expected = ref_logits(learner, ref_sgd(learner, before, task, 4, 0.3), task.xq)
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)


def test_adapt_predict_imaml():
    learner = make_learner("imaml", {"inner_steps": 6, "inner_lr": 0.2, "lam": 0.5})
    task = make_task(6)
    theta = flat_params(learner)
    with torch.no_grad():
        logits = learner.adapt_predict(task)
    assert not logits.requires_grad
    expected = ref_logits(learner, ref_prox(learner, theta, task, 6, 0.2, 0.5), task.xq)
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)


def test_registry_and_param_validation():
    for name in ALL:
        assert name in LEARNERS
    assert LEARNERS.get("maml").params().inner_lr == 0.4
    defaults = LEARNERS.get("imaml").params()
    assert (defaults.inner_steps, defaults.lam, defaults.cg_steps, defaults.cg_tol) == (
        10,
        1.0,
        5,
        None,
    )
    learner = make_learner("maml")
    for bad in ({"lam": 0.0}, {"cg_steps": 0}, {"cg_tol": -1.0}, {"nope": 1}):
        with pytest.raises(pydantic.ValidationError):
            build_learner("imaml", bad, learner.backbone, WAYS)
    with pytest.raises(pydantic.ValidationError):
        build_learner("maml", {"test_inner_steps": -1}, learner.backbone, WAYS)


@pytest.mark.parametrize("name", ALL)
def test_phases_reported_and_zero_inner_steps(name, tasks):
    learner = make_learner(name, {"inner_steps": 0})
    seen: list[str] = []

    @contextlib.contextmanager
    def record(phase: str) -> Iterator[None]:
        seen.append(phase)
        yield

    with active_meter(record), torch.no_grad():  # the learner turns gradients on where needed
        stats = learner.meta_backward(tasks)
    assert {"inner", "hypergrad"} <= set(seen) <= {"inner", "hypergrad"}
    theta = flat_params(learner)
    expected = torch.stack([ref_query_loss(learner, theta, t) for t in tasks]).mean()
    torch.testing.assert_close(stats.loss, expected.detach(), rtol=1e-12, atol=1e-14)
    assert torch.isfinite(flat_grad(learner)).all()
