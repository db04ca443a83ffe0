"""Backbones: feature extractors mapping images (n, C, H, W) to features (n, feat_dim).

A backbone factory is ``factory(params, in_shape: (C, H, W)) -> nn.Module`` and the module has an
integer attribute ``feat_dim``. BatchNorm uses per-task batch statistics (transductive, the usual
MAML-style setting): a forward pass over one task's images normalises with that task's statistics.

Importing this package does not import torch: built-ins are registered lazily with torch-free
params models (:mod:`memcomp.backbones.params`). A plugin's params may subclass
:class:`BackboneParams` and override ``min_image_size`` (or ``input_problem``) so that
:func:`backbone_input_problem` can refuse image sizes before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memcomp.backbones.params import BackboneParams, Conv4Params, ResNet12Params
from memcomp.registry import Params, Registry

if TYPE_CHECKING:
    from torch import nn

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone", "memcomp.backbones")
BACKBONES.register_lazy(
    "conv4",
    "4 x [3x3 conv, BatchNorm, ReLU, 2x2 max-pool]",
    Conv4Params,
    "memcomp.backbones.conv4:build_conv4",
)
BACKBONES.register_lazy(
    "resnet12",
    "ResNet-12: 4 residual blocks (3x [3x3 conv, BN, LeakyReLU] + 1x1 shortcut, max-pool)",
    ResNet12Params,
    "memcomp.backbones.resnet12:build_resnet12",
)


def build_backbone(name: str, params: dict, in_shape: tuple[int, int, int]) -> nn.Module:
    """Validate ``params`` for backbone ``name`` and build it for inputs of ``in_shape``."""
    entry = BACKBONES.get(name)
    return entry.factory(entry.params(**params), in_shape)


def backbone_input_problem(name: str, params: dict, in_shape: tuple[int, int, int]) -> str | None:
    """Why backbone ``name`` with ``params`` cannot take images of ``in_shape`` (C, H, W), known
    without building it; None when it can (or when a plugin's params declare nothing)."""
    model: Any = BACKBONES.get(name).params(**params)
    check = getattr(model, "input_problem", None)
    return check(tuple(in_shape)) if callable(check) else None


__all__ = ["BACKBONES", "BackboneParams", "Params", "backbone_input_problem", "build_backbone"]
