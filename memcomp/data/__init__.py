"""Datasets: a registry of loaders, each returning a :class:`FewShotDataset`.

A loader is registered with ``@DATASETS.register(name, summary, ParamsModel)`` and called as
``factory(params: ParamsModel) -> FewShotDataset``. ``params.image_size`` is always present.
"""

from __future__ import annotations

from collections.abc import Callable

from memcomp.data.base import EpisodeSampler, FewShotDataset, ImageSplit, Task, TaskBatch
from memcomp.registry import Params, Registry

DATASETS: Registry[Callable[..., FewShotDataset]] = Registry("dataset")


class DatasetParams(Params):
    """Options every dataset accepts."""

    image_size: int = 28


def load_dataset(name: str, params: dict) -> FewShotDataset:
    """Validate ``params`` for dataset ``name`` and load it."""
    entry = DATASETS.get(name)
    return entry.factory(entry.params(**params))


__all__ = [
    "DATASETS",
    "DatasetParams",
    "EpisodeSampler",
    "FewShotDataset",
    "ImageSplit",
    "Task",
    "TaskBatch",
    "load_dataset",
]

# Built-in loaders register themselves on import (one line per module).
from memcomp.data import (  # noqa: E402, F401
    cifar,
    glyphs,
    miniimagenet,
    omniglot,
    synthetic,
    tieredimagenet,
)
