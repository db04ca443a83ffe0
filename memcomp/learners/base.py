"""The learner interface shared by every meta-learning algorithm.

A learner owns the meta-parameters: a backbone (features) and a linear head ``head`` sized
(ways x feat_dim). Algorithms whose head initialisation is fixed (itd-bio, mrml) freeze ``head``;
the others meta-learn it. The runner calls, per meta-iteration::

    opt.zero_grad(); stats = learner.meta_backward(tasks); opt.step()

``meta_backward`` must leave in ``p.grad`` of every meta-parameter the meta-gradient of the mean
query loss over ``tasks`` (as defined by the algorithm), and nothing else. Phases of the work are
wrapped in ``with self.phase("inner"):`` / ``with self.phase("hypergrad"):`` so the runner can
measure memory and time per phase; by default ``phase`` is a no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from pydantic import Field
from torch import Tensor, nn

from memcomp.learners import head
from memcomp.registry import Params
from memcomp.types import Task

PhaseFn = Callable[[str], AbstractContextManager[None]]


@contextlib.contextmanager
def no_phase(name: str) -> Iterator[None]:
    yield


class LearnerParams(Params):
    """Parameters every learner accepts."""

    inner_steps: int = Field(5, ge=0, le=100_000, description="inner-loop (lower-level) steps K")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner-loop step size")


@dataclass
class StepStats:
    """What one ``meta_backward`` reports; tensors stay on device (no host sync)."""

    loss: Tensor
    cg_residual: Tensor | None = None


class Learner(nn.Module):
    """Base class: backbone + linear head; subclasses implement the algorithm."""

    meta_learns_head: bool = True

    def __init__(self, backbone: nn.Module, ways: int, params: LearnerParams) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.feat_dim), ways)
        self.ways = ways
        self.params = params
        self.phase: PhaseFn = no_phase
        if not self.meta_learns_head:
            self.head.requires_grad_(False)

    def meta_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the outer optimiser."""
        return [p for p in self.parameters() if p.requires_grad]

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        """Accumulate the meta-gradient (mean over ``tasks``) into ``.grad``."""
        raise NotImplementedError

    def adapt_predict(self, task: Task) -> Tensor:
        """Native meta-test: adapt on the support set as in training, return query logits."""
        raise NotImplementedError

    def head_gd_predict(self, task: Task, l2: float = 0.0) -> Tensor:
        """Query logits after K no-graph SGD steps (``inner_steps``, ``inner_lr``) of the head from
        ``self.head`` on the support features, ``l2`` weighting ``(l2/2)||(W, b)||^2``."""
        p = self.params
        with torch.no_grad(), self.phase("inner"):
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
            w, b = head.gd(
                zs, task.ys, self.head.weight, self.head.bias, p.inner_steps, p.inner_lr, l2
            )
            return head.logits(zq, w, b)

    def test_head_init(self) -> tuple[Tensor, Tensor]:
        """Head (weight, bias) the head-finetune protocol starts from."""
        return self.head.weight.detach(), self.head.bias.detach()


def mean_loss(losses: Sequence[Tensor]) -> Tensor:
    return torch.stack([x.detach() for x in losses]).mean()
