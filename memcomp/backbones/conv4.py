"""Conv4: four blocks of 3x3 conv, BatchNorm (batch statistics), ReLU, 2x2 max-pool.

BatchNorm is :class:`~memcomp.backbones.norm.TaskBatchNorm2d`: per-task statistics also when a
batch of tasks runs as one batch (inside ``task_groups``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memcomp.backbones.norm import TaskBatchNorm2d
from memcomp.backbones.params import Conv4Params


class Conv4(nn.Module):
    """The standard few-shot Conv4 (Vinyals et al.; Finn et al.); output flattened."""

    def __init__(self, in_shape: tuple[int, int, int], hidden: int = 32, blocks: int = 4) -> None:
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [
                nn.Conv2d(c if i == 0 else hidden, hidden, 3, padding=1),
                TaskBatchNorm2d(hidden, track_running_stats=False),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            h, w = h // 2, w // 2
        self.net = nn.Sequential(*layers)
        self.feat_dim = hidden * max(h, 1) * max(w, 1)
        if h < 1 or w < 1:
            raise ValueError(f"image {in_shape} too small for {blocks} pooling blocks")

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.net(x), 1)


def build_conv4(params: Conv4Params, in_shape: tuple[int, int, int]) -> nn.Module:
    return Conv4(in_shape, params.hidden, params.blocks)
