"""ResNet-12 as used in few-shot learning (Oreshkin et al. 2018; MetaOptNet; RFS).

Four residual blocks; each block is three 3x3 conv (no bias) + BatchNorm layers with
LeakyReLU(0.1) after the first two, a 1x1 conv + BatchNorm shortcut added before the final
LeakyReLU, then a 2x2 max-pool. Widths default to 64-160-320-640 (about 12.4M parameters). BatchNorm
uses per-task batch statistics (``track_running_stats=False``, :class:`TaskBatchNorm2d`) like
conv4. With ``avg_pool`` the
final map is globally averaged (feat_dim = last width), otherwise flattened. DropBlock is omitted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memcomp.backbones.norm import TaskBatchNorm2d
from memcomp.backbones.params import ResNet12Params


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class ResBlock(nn.Module):
    """Three 3x3 conv+BN (LeakyReLU between), 1x1 conv+BN shortcut, LeakyReLU, 2x2 max-pool."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout), TaskBatchNorm2d(cout, track_running_stats=False)
        self.conv2, self.bn2 = _conv3(cout, cout), TaskBatchNorm2d(cout, track_running_stats=False)
        self.conv3, self.bn3 = _conv3(cout, cout), TaskBatchNorm2d(cout, track_running_stats=False)
        self.shortcut = nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), TaskBatchNorm2d(cout, track_running_stats=False)
        )
        self.act = nn.LeakyReLU(slope)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.pool(self.act(out + self.shortcut(x)))


class ResNet12(nn.Module):
    """ResNet-12 feature extractor: (n, C, H, W) -> (n, feat_dim)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        widths: list[int] | tuple[int, ...] = (64, 160, 320, 640),
        avg_pool: bool = True,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        blocks = []
        for width in widths:
            blocks.append(ResBlock(c, width, negative_slope))
            c, h, w = width, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"image {in_shape} too small for {len(widths)} pooling blocks")
        self.blocks = nn.Sequential(*blocks)
        self.avg_pool = avg_pool
        self.feat_dim = c if avg_pool else c * h * w
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(x)
        if self.avg_pool:
            return x.mean(dim=(2, 3))
        return torch.flatten(x, 1)


def build_resnet12(params: ResNet12Params, in_shape: tuple[int, int, int]) -> nn.Module:
    return ResNet12(in_shape, params.widths, params.avg_pool, params.negative_slope)
