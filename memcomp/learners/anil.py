"""ANIL (Raghu et al. 2020): adapt only the linear head, meta-learn backbone and head init.

Per task the head starts from the meta-learned initialisation and takes K SGD steps on the support
cross-entropy; the meta-gradient of the query cross-entropy at the adapted head flows, second
order, through the K steps into the head initialisation and the backbone.

Two honest implementations (docs/design.md section 2), chosen by ``features``:

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

from collections.abc import Callable

from torch import Tensor

from memcomp.learners.base import Chunk, ChunkOut, Learner
from memcomp.learners.batching import grouped_features
from memcomp.learners.params import AnilParams
from memcomp.numerics import head
from memcomp.types import Task


class Anil(Learner):
    """ANIL; subclasses with ``meta_learns_head = False`` adapt a fixed head init instead."""

    exact = True
    host_sync_free = True
    test_params = {"inner_steps": 3, "inner_lr": 0.5}
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

    def inner(self, chunk: Chunk) -> tuple[Tensor, Tensor]:
        """Adapted heads ``(W, b)`` of the chunk's tasks ((B, ...) when batched)."""
        if not chunk.batched:
            task = chunk.tasks[0]
            return self.adapt_head(task.xs, task.ys)
        k, xs = len(chunk.tasks), chunk.images("xs")
        w0 = self.head.weight.unsqueeze(0).expand(k, -1, -1)
        b0 = self.head.bias.unsqueeze(0).expand(k, -1)
        return self._adapt(lambda: grouped_features(self.backbone, xs), chunk.stack("ys"), w0, b0)

    def hypergrad(self, chunk: Chunk, state: tuple[Tensor, Tensor]) -> ChunkOut:
        w, b = state
        if not chunk.batched:
            task = chunk.tasks[0]
            loss = head.loss(self.backbone(task.xq), task.yq, w, b)
        else:
            zq = grouped_features(self.backbone, chunk.images("xq"))
            loss = head.loss(zq, chunk.stack("yq"), w, b)
        return ChunkOut(loss=loss.detach(), objective=loss)

    def adapt_predict(self, task: Task) -> Tensor:
        return self.head_gd_predict(task, self.l2)
