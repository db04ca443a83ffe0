"""ITD-BiO: meta-gradient into the backbone through K regularised head steps from a fixed init."""

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


def itd_objective(learner: Learner, tasks, steps: int, lr: float, l2: float) -> float:
    """Mean query CE after ``steps`` autograd GD steps on support CE + (l2/2)||phi||^2."""
    total = 0.0
    with torch.no_grad():
        for t in tasks:
            zs, zq = learner.backbone(t.xs), learner.backbone(t.xq)
            w, b = autograd_gd(zs, t.ys, learner.head.weight, learner.head.bias, steps, lr, l2)
            total += float(F.cross_entropy(F.linear(zq, w, b), t.yq))
    return total / len(tasks)


@pytest.mark.parametrize("features", ["once", "per-step"])
def test_meta_gradient_matches_finite_differences(features: str) -> None:
    params = {"inner_steps": 4, "inner_lr": 0.5, "l2": 0.05, "features": features}
    learner = tiny_learner("itd-bio", params)
    tasks = tiny_tasks(2)
    meta = learner.meta_parameters()
    assert all(p is not learner.head.weight and p is not learner.head.bias for p in meta)
    assert len(meta) == len(list(learner.backbone.parameters()))
    head_before = learner.head.weight.detach().clone()
    grads = meta_grads(learner, tasks)
    assert learner.head.weight.grad is None and torch.equal(learner.head.weight, head_before)
    check_directional(lambda: itd_objective(learner, tasks, 4, 0.5, 0.05), meta, grads, n_dirs=4)


def test_once_equals_per_step_and_l2_matters() -> None:
    tasks = tiny_tasks(2, seed=3)
    g = {}
    for mode, l2 in (("once", 0.2), ("per-step", 0.2), ("once", 0.0)):
        learner = tiny_learner("itd-bio", {"inner_steps": 5, "features": mode, "l2": l2}, seed=1)
        g[mode, l2] = meta_grads(learner, tasks)
    for a, b in zip(g["once", 0.2], g["per-step", 0.2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    diff = max(
        float((a - b).abs().max()) for a, b in zip(g["once", 0.2], g["once", 0.0], strict=True)
    )
    assert diff > 1e-6


def test_defaults_graph_forwards_and_adapt_predict() -> None:
    p = LEARNERS.get("itd-bio").params()
    assert (p.inner_steps, p.inner_lr, p.l2, p.features) == (20, 0.1, 1e-4, "per-step")
    with pytest.raises(ValidationError):
        LEARNERS.get("itd-bio").params(l2=-1.0)
    learner = tiny_learner("itd-bio", {"inner_steps": 3, "inner_lr": 0.5, "l2": 0.1})
    tasks = tiny_tasks(1)
    counter = ForwardCounter(learner.backbone)
    stats = learner.meta_backward(tasks)
    counter.remove()
    assert counter.with_graph == 3 + 1  # per-step: one support graph per step, one query graph
    assert abs(float(stats.loss) - itd_objective(learner, tasks, 3, 0.5, 0.1)) < 1e-12
    logits = learner.adapt_predict(tasks[0])
    ce = float(F.cross_entropy(logits, tasks[0].yq))
    assert abs(ce - itd_objective(learner, tasks, 3, 0.5, 0.1)) < 1e-12
