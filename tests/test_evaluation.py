"""Meta-test protocols and accuracy statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from memcomp.backbones import build_backbone
from memcomp.config.settings import TestConfig
from memcomp.engine.evaluation import AccuracyStats, evaluate, finetune_head_predict
from memcomp.learners import build_learner
from memcomp.types import Task


def _task(gen: torch.Generator, ways: int = 3, n: int = 2) -> Task:
    y = torch.arange(ways).repeat_interleave(n)
    return Task(torch.randn(ways * n, 1, 8, 8, generator=gen), y,
                torch.randn(ways * n, 1, 8, 8, generator=gen), y.clone())  # fmt: skip


@pytest.fixture
def learner() -> torch.nn.Module:
    torch.manual_seed(0)
    bb = build_backbone("conv4", {"hidden": 4, "blocks": 2}, (1, 8, 8))
    return build_learner("mrml", {"inner_steps": 3, "cg_steps": 3}, bb, 3).double()


def test_accuracy_stats_mean_std_and_ci95() -> None:
    s = AccuracyStats([50.0, 100.0, 0.0, 50.0])
    assert s.mean == 50.0
    assert s.std == pytest.approx(math.sqrt(5000 / 3))
    assert s.ci95 == pytest.approx(1.96 * math.sqrt(5000 / 3) / 2)
    assert AccuracyStats([70.0]).ci95 == 0.0


def test_head_finetune_is_plain_gd_on_frozen_features(learner) -> None:
    task = _task(torch.Generator().manual_seed(1)).to("cpu", torch.float64)
    before = [p.detach().clone() for p in learner.parameters()]
    w, b = (t.clone() for t in learner.test_head_init())
    with torch.no_grad():
        zs, zq = learner.backbone(task.xs), learner.backbone(task.xq)
    assert torch.equal(finetune_head_predict(learner, task, 0, 0.05), F.linear(zq, w, b))
    for _ in range(4):  # reference: explicit gradient steps on the support CE
        w.requires_grad_(True), b.requires_grad_(True)
        gw, gb = torch.autograd.grad(F.cross_entropy(F.linear(zs, w, b), task.ys), (w, b))
        w, b = (w - 0.05 * gw).detach(), (b - 0.05 * gb).detach()
    got = finetune_head_predict(learner, task, 4, 0.05)
    torch.testing.assert_close(got, F.linear(zq, w, b), rtol=1e-12, atol=1e-12)
    for p, q in zip(learner.parameters(), before, strict=True):
        assert torch.equal(p, q)  # evaluation never changes the meta-parameters


def test_evaluate_protocols_return_one_accuracy_per_episode(learner) -> None:
    gen = torch.Generator().manual_seed(2)
    eps = [_task(gen) for _ in range(5)]
    for protocol in ("native", "head-finetune"):
        stats = evaluate(learner, eps, TestConfig(protocol=protocol), torch.device("cpu"),
                         torch.float64)  # fmt: skip
        assert stats.n == 5
        correct = [a * 6 / 100 for a in stats.accs]  # 6 query images per episode
        assert all(abs(c - round(c)) < 1e-9 and 0 <= c <= 6 for c in correct), stats.accs
