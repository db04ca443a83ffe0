"""The learner interface shared by every meta-learning algorithm.

A learner owns the meta-parameters: a backbone (features) and a linear head ``head`` sized
(ways x feat_dim). Algorithms whose head initialisation is fixed (itd-bio, mrml) freeze ``head``;
the others meta-learn it. The runner calls, per meta-iteration::

    opt.zero_grad(); stats = learner.meta_backward(tasks); opt.step()

``meta_backward`` must leave in ``p.grad`` of every meta-parameter the meta-gradient of the mean
query loss over ``tasks`` (as defined by the algorithm), and nothing else. The built-in learners
implement :meth:`Learner.inner` and :meth:`Learner.hypergrad` for one chunk of tasks and let
:func:`memcomp.learners.driver.run_chunks` run them (sequential, batched, chunked, phases marked
through :func:`memcomp.measure.phases.phase`); a plugin may instead override ``meta_backward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from memcomp.learners.driver import (
    Chunk,
    ChunkOut,
    Execution,
    StepStats,
    run_chunks,
    use_batched,
)
from memcomp.learners.params import LearnerParams
from memcomp.measure.phases import phase
from memcomp.numerics import head
from memcomp.types import Task

__all__ = ["Chunk", "ChunkOut", "Learner", "LearnerParams", "StepStats"]


class Learner(nn.Module):
    """Base class: backbone + linear head; subclasses implement the algorithm.

    Hooks of the contract ``memcomp verify`` checks (docs/extending.md): ``exact``: the
    meta-gradient is the exact derivative of :meth:`meta_objective` (checked against finite
    differences; otherwise its error is measured); ``test_params``: tiny hyper-parameters for the
    checks; ``limit_params``: for an approximation, hyper-parameters where it has converged to
    the exact hypergradient (checked); ``host_sync_free``: the inner loop never reads a device
    value back to the host (checked); :meth:`skip` declines a configuration with a reason.
    """

    meta_learns_head: bool = True
    exact: ClassVar[bool] = False
    test_params: ClassVar[dict[str, Any]] = {}
    limit_params: ClassVar[dict[str, Any] | None] = None
    host_sync_free: ClassVar[bool] = False
    # execution: auto on a CPU (docs/design.md section 7): the faster mode there, as measured
    cpu_execution: ClassVar[str] = "sequential"
    cpu_execution_reason: ClassVar[str] = (
        "batching did not pay on a CPU: maml, imaml, anil per-step 0.6-0.85x of sequential "
        "(README Speed); fomaml 0.55x, itd-bio 0.70x, r2d2 0.59x, maml-recompute 0.68x, anil "
        "once 0.75-1.10x (2026-12-04)"
    )

    def __init__(self, backbone: nn.Module, ways: int, params: LearnerParams) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.feat_dim), ways)
        self.ways = ways
        self.params = params
        self.execution_plan: Execution | None = None  # auto's choice (memcomp.engine.choose)
        if not self.meta_learns_head:
            self.head.requires_grad_(False)

    def meta_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the outer optimiser."""
        return [p for p in self.parameters() if p.requires_grad]

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        """Accumulate the meta-gradient (mean over ``tasks``) into ``.grad``."""
        return run_chunks(self, tasks)

    @classmethod
    def skip(cls, cell: Any) -> str | None:
        """A reason to decline ``cell`` (a :class:`memcomp.config.Cell`: its setting, dataset,
        backbone, parameters), which becomes a ``status=skipped`` row; None runs it."""
        return None

    def meta_objective(self, tasks: Sequence[Task]) -> Tensor:
        """The meta objective (a scalar, mean over ``tasks``) whose gradient in the
        meta-parameters ``meta_backward`` computes or approximates. Default: the mean query loss
        ``meta_backward`` reports (it may change ``.grad``). Approximate learners return their
        exact problem's objective, e.g. the query loss at the lower level solved to convergence."""
        return self.meta_backward(tasks).loss

    def batchable(self, tasks: Sequence[Task]) -> bool:
        """Whether the driver may stack ``tasks`` (batched execution allowed: ``batched`` or
        ``auto``, and possible)."""
        return use_batched(self.params, tasks)

    def retry_state(self) -> Any:
        """State a meta-batch changes besides ``.grad`` (e.g. warm starts), taken before a
        meta-batch the driver may retry after an out-of-memory (default: none)."""
        return None

    def restore_retry_state(self, state: Any) -> None:
        """Put back what :meth:`retry_state` returned, before the retry."""

    def inner(self, chunk: Chunk) -> Any:
        """Inner loop of ``chunk`` (phase "inner"); returns what :meth:`hypergrad` needs."""
        raise NotImplementedError

    def hypergrad(self, chunk: Chunk, state: Any) -> ChunkOut:
        """Query losses and the objective (or flat meta-gradient) of ``chunk``."""
        raise NotImplementedError

    def adapt_predict(self, task: Task) -> Tensor:
        """Native meta-test: adapt on the support set as in training, return query logits."""
        raise NotImplementedError

    def head_gd_predict(self, task: Task, l2: float = 0.0) -> Tensor:
        """Query logits after K no-graph SGD steps (``inner_steps``, ``inner_lr``) of the head from
        ``self.head`` on the support features, ``l2`` weighting ``(l2/2)||(W, b)||^2``."""
        p = self.params
        with torch.no_grad(), phase("inner"):
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
            w, b = head.gd(
                zs, task.ys, self.head.weight, self.head.bias, p.inner_steps, p.inner_lr, l2
            )
            return head.logits(zq, w, b)

    def test_head_init(self) -> tuple[Tensor, Tensor]:
        """Head (weight, bias) the head-finetune protocol starts from."""
        return self.head.weight.detach(), self.head.bias.detach()
