"""Plain data types shared by every layer: one few-shot task and a stacked batch of tasks.

No import of the data package: learners, numerics and measurement use these types without loading
any dataset code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Task:
    """One few-shot episode: support (xs, ys) and query (xq, yq); labels are 0..ways-1."""

    xs: Tensor
    ys: Tensor
    xq: Tensor
    yq: Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Task:
        def move(x: Tensor) -> Tensor:
            return x.to(device=device, dtype=dtype if x.is_floating_point() else None)

        return Task(move(self.xs), self.ys.to(device), move(self.xq), self.yq.to(device))

    @property
    def ways(self) -> int:
        return int(self.ys.max().item()) + 1


@dataclass
class TaskBatch:
    """Tasks of one meta-batch stacked on a leading dimension (B, n, C, H, W)."""

    xs: Tensor
    ys: Tensor
    xq: Tensor
    yq: Tensor

    @staticmethod
    def stack(tasks: Sequence[Task]) -> TaskBatch:
        return TaskBatch(
            torch.stack([t.xs for t in tasks]),
            torch.stack([t.ys for t in tasks]),
            torch.stack([t.xq for t in tasks]),
            torch.stack([t.yq for t in tasks]),
        )

    def __len__(self) -> int:
        return self.xs.shape[0]

    def __getitem__(self, i: int) -> Task:
        return Task(self.xs[i], self.ys[i], self.xq[i], self.yq[i])
