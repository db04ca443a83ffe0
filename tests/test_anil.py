"""ANIL: second-order meta-gradient vs finite differences, once == per-step, memory structure."""

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
    tiny_learner,
    tiny_tasks,
)
from pydantic import ValidationError

from memcomp.learners import LEARNERS, Learner


def anil_objective(learner: Learner, tasks, steps: int, lr: float, l2: float = 0.0) -> float:
    """Mean query CE after ``steps`` autograd GD steps on the head from ``learner.head``."""
    total = 0.0
    with torch.no_grad():
        for t in tasks:
            zs, zq = learner.backbone(t.xs), learner.backbone(t.xq)
            w, b = autograd_gd(zs, t.ys, learner.head.weight, learner.head.bias, steps, lr, l2)
            total += float(F.cross_entropy(F.linear(zq, w, b), t.yq))
    return total / len(tasks)


@pytest.mark.parametrize("features", ["once", "per-step"])
def test_meta_gradient_matches_finite_differences(features: str) -> None:
    learner = tiny_learner("anil", {"inner_steps": 3, "inner_lr": 0.5, "features": features})
    tasks = tiny_tasks(2)
    params = learner.meta_parameters()
    assert any(p is learner.head.weight for p in params)
    grads = meta_grads(learner, tasks)
    assert grads[-1].abs().sum() > 0 and grads[0].abs().sum() > 0  # head and backbone move

    def fn() -> float:
        return anil_objective(learner, tasks, 3, 0.5)

    check_directional(fn, params, grads, n_dirs=4, rtol=1e-6)


def test_once_equals_per_step() -> None:
    tasks = tiny_tasks(3, seed=4)
    g = {}
    for mode in ("once", "per-step"):
        learner = tiny_learner("anil", {"inner_steps": 4, "features": mode}, seed=2)
        g[mode] = meta_grads(learner, tasks)
    for a, b in zip(g["once"], g["per-step"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_loss_and_adapt_predict() -> None:
    learner = tiny_learner("anil", {"inner_steps": 2, "inner_lr": 0.5})
    tasks = tiny_tasks(2)
    stats = learner.meta_backward(tasks)
    ref = anil_objective(learner, tasks, 2, 0.5)
    assert not stats.loss.requires_grad and stats.cg_residual is None
    assert abs(float(stats.loss) - ref) < 1e-12
    logits = learner.adapt_predict(tasks[0])
    assert logits.shape == (6, 3) and not logits.requires_grad
    ce = float(F.cross_entropy(logits, tasks[0].yq))
    assert abs(ce - anil_objective(learner, tasks[:1], 2, 0.5)) < 1e-12


@pytest.mark.parametrize(
    ("features", "steps", "graph_forwards"),
    [
        ("once", 1, 2),
        ("once", 6, 2),
        ("per-step", 1, 2),
        ("per-step", 6, 7),
    ],
)
@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_graph_forwards_per_task(
    features: str, steps: int, graph_forwards: int, execution: str
) -> None:
    """``once`` keeps one support graph whatever K; ``per-step`` one per inner step.

    Sequential: that many forwards per task; batched: that many forwards for all tasks at once.
    """
    params = {"inner_steps": steps, "features": features, "execution": execution}
    learner = tiny_learner("anil", params)
    counter = ForwardCounter(learner.backbone)
    learner.meta_backward(tiny_tasks(2))
    counter.remove()
    assert counter.with_graph == (2 if execution == "sequential" else 1) * graph_forwards


def test_float32_and_zero_steps() -> None:
    learner = tiny_learner("anil", {"inner_steps": 0}).float()
    tasks = tiny_tasks(2, dtype=torch.float32)
    stats = learner.meta_backward(tasks)
    assert stats.loss.dtype == torch.float32 and torch.isfinite(stats.loss)
    assert all(
        p.grad is not None and p.grad.dtype == torch.float32 for p in learner.meta_parameters()
    )


def test_params_validation() -> None:
    entry = LEARNERS.get("anil")
    p = entry.params()
    assert (p.inner_steps, p.inner_lr, p.features) == (5, 0.1, "once")
    assert (p.execution, p.task_chunk) == ("auto", None)
    with pytest.raises(ValidationError):
        entry.params(features="twice")
    with pytest.raises(ValidationError):
        entry.params(l2=0.1)
