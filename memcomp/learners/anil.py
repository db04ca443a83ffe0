"""ANIL (Raghu et al. 2020): adapt only the linear head, meta-learn backbone and head init.

Per task the head starts from the meta-learned initialisation and takes K SGD steps on the support
cross-entropy; the meta-gradient of the query cross-entropy at the adapted head flows, second
order, through the K steps into the head initialisation and the backbone.

Two honest implementations (design notes, section 2), chosen by ``features``:

* ``once``: the backbone runs once per task on the support set (with graph) and the K closed-form
  head steps reuse those features, so memory is one backbone graph, flat in K;
* ``per-step``: the backbone is re-run at every inner step, as learn2learn-style code and the
  paper's experiments do; each step keeps its own backbone graph, so memory grows with K.

Both give the same meta-gradient. ``execution="sequential"`` runs tasks one after another, each
task's outer backward freeing its graph before the next task starts. ``execution="batched"``
(default) runs ``task_chunk`` tasks together: each backbone forward covers all tasks' support (or
query) images with per-task BatchNorm statistics, the head steps are batched closed forms over a
leading task dimension, and one backward per chunk. ``itd-bio`` reuses this class with a fixed head
init.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from memcomp.learners import LEARNERS, head
from memcomp.learners.base import StepStats, mean_loss
from memcomp.learners.batching import (
    BatchableLearner,
    ExecutionParams,
    grouped_features,
    task_chunks,
)
from memcomp.types import Task

FeatureMode = Literal["once", "per-step"]


class AnilParams(ExecutionParams):
    """Parameters of ``anil``."""

    inner_steps: int = Field(5, ge=0, le=100_000, description="inner SGD steps K on the head")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner SGD step size")
    features: FeatureMode = Field(
        "once",
        description="support features computed once per task (memory flat in K) or re-computed "
        "at every inner step (learn2learn / paper style, memory grows with K)",
    )


@LEARNERS.register(
    "anil", "ANIL: second-order meta-gradient through K SGD steps on the head only", AnilParams
)
class Anil(BatchableLearner):
    """ANIL; subclasses with ``meta_learns_head = False`` adapt a fixed head init instead."""

    params: AnilParams

    @property
    def l2(self) -> float:
        """Coefficient of ``(l2/2)||(W, b)||^2`` in the inner objective (0 for ANIL)."""
        return float(getattr(self.params, "l2", 0.0))

    def adapt_head(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        """K head steps from ``self.head``, differentiable in the backbone (and head init)."""
        return self._adapt(lambda: self.backbone(xs), ys, self.head.weight, self.head.bias)

    def _adapt(
        self, features: Callable[[], Tensor], ys: Tensor, w: Tensor, b: Tensor
    ) -> tuple[Tensor, Tensor]:
        """K head steps from ``(w, b)`` on ``features()`` (called once, or per step)."""
        p = self.params
        if p.features == "once" and p.inner_steps:
            return head.gd_graph(features(), ys, w, b, p.inner_steps, p.inner_lr, self.l2)
        ys = head.onehot(ys, self.ways, w)
        for _ in range(p.inner_steps):
            w, b = head.gd_graph(features(), ys, w, b, 1, p.inner_lr, self.l2)
        return w, b

    def _meta_backward_batched(self, tasks: Sequence[Task]) -> StepStats:
        n = len(tasks)
        losses = []
        with torch.enable_grad():
            for chunk in task_chunks(tasks, self.params.task_chunk):
                k = len(chunk)
                xs, ys = [t.xs for t in chunk], torch.stack([t.ys for t in chunk])
                with self.phase("inner"):
                    w0 = self.head.weight.unsqueeze(0).expand(k, -1, -1)
                    b0 = self.head.bias.unsqueeze(0).expand(k, -1)
                    w, b = self._adapt(
                        lambda xs=xs: grouped_features(self.backbone, xs), ys, w0, b0
                    )
                with self.phase("hypergrad"):
                    zq = grouped_features(self.backbone, [t.xq for t in chunk])
                    loss = head.loss(zq, torch.stack([t.yq for t in chunk]), w, b)
                    (loss.sum() / n).backward()
                losses.append(loss.detach())
        return StepStats(loss=torch.cat(losses).mean())

    def _meta_backward_sequential(self, tasks: Sequence[Task]) -> StepStats:
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
        return self.head_gd_predict(task, self.l2)
