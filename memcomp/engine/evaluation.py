"""Meta-test protocols and accuracy statistics.

``native`` adapts the way the learner does at training time (``Learner.adapt_predict``).
``head-finetune`` (the paper's protocol) freezes the backbone and fine-tunes a linear head from the
learner's test head initialisation with plain gradient descent on the support cross-entropy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from memcomp.config.settings import TestConfig
from memcomp.learners.base import Learner
from memcomp.numerics import head
from memcomp.types import Task


@dataclass
class AccuracyStats:
    """Per-episode accuracies (percent) with mean, std and 95% CI (1.96 * std / sqrt(n))."""

    accs: list[float]

    @property
    def n(self) -> int:
        return len(self.accs)

    @property
    def mean(self) -> float:
        return sum(self.accs) / self.n

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accs) / (self.n - 1))

    @property
    def ci95(self) -> float:
        return 1.96 * self.std / math.sqrt(self.n)


def finetune_head_predict(learner: Learner, task: Task, steps: int, lr: float) -> Tensor:
    """Frozen-backbone features, head GD on the support CE, query logits."""
    with torch.no_grad():
        zs = learner.backbone(task.xs)
        zq = learner.backbone(task.xq)
        w0, b0 = learner.test_head_init()
        w, b = head.gd(zs, task.ys, w0, b0, steps, lr)
        return F.linear(zq, w, b)


def evaluate(
    learner: Learner,
    episodes: Sequence[Task],
    cfg: TestConfig,
    device: torch.device,
    dtype: torch.dtype,
) -> AccuracyStats:
    """Accuracy (percent) of ``learner`` on each episode under ``cfg.protocol``."""
    accs: list[Tensor] = []
    was_training = learner.training
    for task in episodes:
        t = task.to(device, dtype)
        if cfg.protocol == "native":
            logits = learner.adapt_predict(t)
        else:
            logits = finetune_head_predict(learner, t, cfg.finetune_steps, cfg.finetune_lr)
        accs.append((logits.argmax(-1) == t.yq).to(torch.float64).mean() * 100.0)
    learner.train(was_training)
    return AccuracyStats(torch.stack(accs).cpu().tolist())
