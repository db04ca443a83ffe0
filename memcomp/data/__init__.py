"""Datasets: a registry of loaders, each returning a :class:`FewShotDataset`.

A loader is registered with ``@DATASETS.register(name, summary, ParamsModel)`` and called as
``factory(params: ParamsModel) -> FewShotDataset``. ``params.image_size`` is always present.

Importing this package does not import torch: the built-in loaders are registered lazily
(``"module:attr"``) with torch-free params models (:mod:`memcomp.data.params`); the data classes
(``FewShotDataset``, ``EpisodeSampler``, ...) are imported on first access.

A dataset's params model may override :meth:`DatasetParams.supply` to declare, without loading,
the most it can supply; :func:`dataset_supply` and :func:`setting_problems` turn that into
``validate`` problems.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memcomp.data.params import (
    CifarFSParams,
    DatasetParams,
    DataSupply,
    FC100Params,
    GlyphsParams,
    MiniParams,
    OmniglotParams,
    SyntheticParams,
    TieredParams,
    setting_problems,
)
from memcomp.registry import Registry

if TYPE_CHECKING:
    from memcomp.data.base import EpisodeSampler, FewShotDataset, ImageSplit, Task, TaskBatch

DATASETS: Registry[Callable[..., FewShotDataset]] = Registry("dataset", "memcomp.datasets")

_BUILT_IN = [
    (
        "glyphs",
        "letters rendered from matplotlib's bundled fonts (~280 classes, no download)",
        GlyphsParams,
        "memcomp.data.glyphs:load_glyphs",
    ),
    (
        "synthetic",
        "random images of any shape and class count, for memory/speed runs (weakly learnable)",
        SyntheticParams,
        "memcomp.data.synthetic:load_synthetic",
    ),
    (
        "cifar-fs",
        "CIFAR-FS: CIFAR-100, 64/16/20 classes, 32x32 RGB",
        CifarFSParams,
        "memcomp.data.cifar:load_cifar_fs",
    ),
    (
        "fc100",
        "FC100: CIFAR-100 by superclass, 60/20/20 classes",
        FC100Params,
        "memcomp.data.cifar:load_fc100",
    ),
    (
        "omniglot",
        "Omniglot, 1,623 characters, Vinyals 1200/211/212 split, grayscale",
        OmniglotParams,
        "memcomp.data.omniglot:load_omniglot",
    ),
    (
        "mini-imagenet",
        "miniImageNet, Ravi split 64/16/20 classes, 84x84 RGB",
        MiniParams,
        "memcomp.data.miniimagenet:load_mini_imagenet",
    ),
    (
        "tiered-imagenet",
        "tieredImageNet, 351/97/160 classes from 34 superclasses, 84x84 RGB",
        TieredParams,
        "memcomp.data.tieredimagenet:load_tiered_imagenet",
    ),
]
for _name, _summary, _params, _target in _BUILT_IN:
    DATASETS.register_lazy(_name, _summary, _params, _target)


def load_dataset(name: str, params: dict) -> FewShotDataset:
    """Validate ``params`` for dataset ``name`` and load it."""
    entry = DATASETS.get(name)
    return entry.factory(entry.params(**params))


def dataset_supply(name: str, params: dict) -> DataSupply | None:
    """What dataset ``name`` with ``params`` can supply at most, known without loading it (None:
    unknown, e.g. a plugin that declares nothing). Raises for unknown names or invalid params."""
    entry = DATASETS.get(name)
    model = entry.params(**params)
    supply = getattr(model, "supply", None)
    return supply() if callable(supply) else None


_LAZY = {n: "memcomp.data.base" for n in ("EpisodeSampler", "FewShotDataset", "ImageSplit")}
_LAZY |= {"Task": "memcomp.types", "TaskBatch": "memcomp.types"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "DataSupply",
    "DatasetParams",
    "EpisodeSampler",
    "FewShotDataset",
    "ImageSplit",
    "Task",
    "TaskBatch",
    "dataset_supply",
    "load_dataset",
    "setting_problems",
]
