"""ANIL (Raghu et al. 2020): adapt only the linear head, meta-learn backbone and head init.

Per task the head starts from the meta-learned initialisation and takes K SGD steps on the support
cross-entropy; the meta-gradient of the query cross-entropy at the adapted head flows, second
order, through the K steps into the head initialisation and the backbone.

Two honest implementations (design notes, section 2), chosen by ``features``:

* ``once``: the backbone runs once per task on the support set (with graph) and the K closed-form
  head steps reuse those features, so memory is one backbone graph, flat in K;
* ``per-step``: the backbone is re-run at every inner step, as learn2learn-style code and the
  paper's experiments do; each step keeps its own backbone graph, so memory grows with K.

Both give the same meta-gradient. Tasks run one after another, each task's outer backward freeing
its graph before the next task starts. ``itd-bio`` reuses this class with a fixed head init.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from memcomp.data.base import Task
from memcomp.learners import LEARNERS, head
from memcomp.learners.base import Learner, LearnerParams, StepStats, mean_loss

FeatureMode = Literal["once", "per-step"]


class AnilParams(LearnerParams):
    """Parameters of ``anil``."""

    inner_steps: int = Field(5, ge=0, description="inner SGD steps K on the head")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner SGD step size")
    features: FeatureMode = Field(
        "once",
        description="support features computed once per task (memory flat in K) or re-computed "
        "at every inner step (learn2learn / paper style, memory grows with K)",
    )


@LEARNERS.register(
    "anil", "ANIL: second-order meta-gradient through K SGD steps on the head only", AnilParams
)
class Anil(Learner):
    """ANIL; subclasses with ``meta_learns_head = False`` adapt a fixed head init instead."""

    params: AnilParams

    @property
    def l2(self) -> float:
        """Coefficient of ``(l2/2)||(W, b)||^2`` in the inner objective (0 for ANIL)."""
        return float(getattr(self.params, "l2", 0.0))

    def adapt_head(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        """K head steps from ``self.head``, differentiable in the backbone (and head init)."""
        p = self.params
        w, b = self.head.weight, self.head.bias
        if p.features == "once" and p.inner_steps:
            return head.gd_graph(self.backbone(xs), ys, w, b, p.inner_steps, p.inner_lr, self.l2)
        ys = head.onehot(ys, self.ways, w)
        for _ in range(p.inner_steps):
            w, b = head.gd_graph(self.backbone(xs), ys, w, b, 1, p.inner_lr, self.l2)
        return w, b

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        if not tasks:
            raise ValueError("meta_backward needs at least one task")
        n = len(tasks)
        losses = []
        with torch.enable_grad():
            for task in tasks:
                with self.phase("inner"):
                    w, b = self.adapt_head(task.xs, task.ys)
                with self.phase("hypergrad"):
                    loss = head.loss(self.backbone(task.xq), task.yq, w, b)
                    (loss / n).backward()
                losses.append(loss.detach())
        return StepStats(loss=mean_loss(losses))

    def adapt_predict(self, task: Task) -> Tensor:
        p = self.params
        with torch.no_grad(), self.phase("inner"):
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
            w, b = head.gd(
                zs, task.ys, self.head.weight, self.head.bias, p.inner_steps, p.inner_lr, self.l2
            )
            return head.logits(zq, w, b)
