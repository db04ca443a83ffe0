"""ResNet-12 backbone: shapes, parameter count, float64 gradients."""

from __future__ import annotations

import pytest
import torch

from memcomp.backbones import build_backbone
from memcomp.backbones.resnet12 import ResNet12


def expected_params(cin: int, widths: list[int]) -> int:
    """Per block: three 3x3 convs (no bias), 1x1 shortcut conv, four BatchNorms (weight+bias)."""
    total = 0
    for w in widths:
        total += 9 * cin * w + 2 * 9 * w * w + cin * w + 4 * 2 * w
        cin = w
    return total


def test_standard_parameter_count() -> None:
    net = build_backbone("resnet12", {}, (3, 84, 84))
    n = sum(p.numel() for p in net.parameters())
    assert n == expected_params(3, [64, 160, 320, 640]) == 12_424_320
    assert not list(net.buffers())  # per-task batch statistics: no running stats


@pytest.mark.parametrize(
    ("size", "avg_pool", "feat"), [(84, True, 640), (84, False, 640 * 5 * 5), (32, False, 640 * 4)]
)
def test_output_shapes(size: int, avg_pool: bool, feat: int) -> None:
    torch.manual_seed(0)
    net = ResNet12((3, size, size), widths=[8, 16, 24, 640], avg_pool=avg_pool)
    assert net.feat_dim == feat
    out = net(torch.randn(3, 3, size, size))
    assert out.shape == (3, feat)


def test_standard_widths_forward_32() -> None:
    torch.manual_seed(0)
    net = build_backbone("resnet12", {}, (3, 32, 32))
    assert net.feat_dim == 640
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 640)


def test_float64_gradients_match_finite_differences() -> None:
    torch.manual_seed(0)
    net = ResNet12((1, 16, 16), widths=[2, 3], avg_pool=True).double()
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    out = net(x)
    assert out.dtype == torch.float64 and out.shape == (4, 3)
    w = net.blocks[1].conv2.weight

    def loss() -> torch.Tensor:
        return (net(x) ** 2).sum()

    (g,) = torch.autograd.grad(loss(), w)
    eps = 1e-6
    idx = (1, 2, 0, 1)
    with torch.no_grad():
        w[idx] += eps
        up = loss().item()
        w[idx] -= 2 * eps
        down = loss().item()
        w[idx] += eps
    assert g[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-8)
    assert g.abs().sum() > 0


def test_too_small_input_and_bad_params() -> None:
    with pytest.raises(ValueError, match="too small"):
        ResNet12((3, 8, 8))
    with pytest.raises(Exception, match="extra|widths"):
        build_backbone("resnet12", {"width": [1]}, (3, 84, 84))
