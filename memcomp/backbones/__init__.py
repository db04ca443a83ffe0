"""Backbones: feature extractors mapping images (n, C, H, W) to features (n, feat_dim).

A backbone factory is ``factory(params, in_shape: (C, H, W)) -> nn.Module`` and the module has an
integer attribute ``feat_dim``. BatchNorm uses per-task batch statistics (transductive, the usual
MAML-style setting): a forward pass over one task's images normalises with that task's statistics.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from memcomp.registry import Params, Registry

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")


def build_backbone(name: str, params: dict, in_shape: tuple[int, int, int]) -> nn.Module:
    """Validate ``params`` for backbone ``name`` and build it for inputs of ``in_shape``."""
    entry = BACKBONES.get(name)
    return entry.factory(entry.params(**params), in_shape)


from memcomp.backbones import conv4, resnet12  # noqa: E402, F401

__all__ = ["BACKBONES", "Params", "build_backbone"]
