"""Data contracts: image splits held in memory, episodes (tasks) and their sampler.

Every dataset decodes its images once into an :class:`ImageSplit` per split (uint8, N x C x H x W,
labels 0..n_classes-1); episodes are then cheap tensor indexing with a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from memcomp.errors import DataError
from memcomp.types import Task, TaskBatch

__all__ = ["SPLITS", "EpisodeSampler", "FewShotDataset", "ImageSplit", "Task", "TaskBatch"]

SPLITS = ("train", "val", "test")


@dataclass
class ImageSplit:
    """All images of one split, decoded: ``images`` uint8 (N, C, H, W), ``labels`` long (N,)."""

    images: Tensor
    labels: Tensor
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.n_classes = int(self.labels.max().item()) + 1 if len(self.labels) else 0
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=self.n_classes)
        self._by_class = list(torch.split(order, counts.tolist()))
        self.counts = counts

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


@dataclass
class FewShotDataset:
    """A loaded dataset: its three splits plus a manifest (counts, checksum, source, format)."""

    name: str
    splits: dict[str, ImageSplit]
    manifest: dict[str, Any]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def split(self, name: str) -> ImageSplit:
        return self.splits[name]

    def check_setting(self, ways: int, shots: int, queries: int) -> None:
        """Raise :class:`DataError` if some split cannot supply ``ways``-way episodes."""
        need = shots + queries
        for sname, s in self.splits.items():
            if s.n_classes < ways:
                raise DataError(
                    f"dataset {self.name!r}: split {sname!r} has {s.n_classes} classes, "
                    f"fewer than ways={ways}; lower `ways` in the suite's settings"
                )
            small = (s.counts < need).nonzero().flatten().tolist()
            if len(small) > s.n_classes - ways:
                raise DataError(
                    f"dataset {self.name!r}: split {sname!r} has only "
                    f"{s.n_classes - len(small)} classes with >= shots+queries={need} images "
                    f"(need {ways}); lower shots or queries"
                )


class EpisodeSampler:
    """Samples ``ways``-way ``shots``-shot tasks with ``queries`` query images per class.

    Images are converted to float in [0, 1] and optionally normalised by (mean, std). Classes with
    fewer than shots+queries images are never drawn. Sampling is a pure function of the generator.
    """

    def __init__(
        self,
        data: FewShotDataset,
        split: str,
        ways: int,
        shots: int,
        queries: int,
        normalize: bool = True,
    ) -> None:
        data.check_setting(ways, shots, queries)
        self.split = data.split(split)
        self.ways, self.shots, self.queries = ways, shots, queries
        need = shots + queries
        self.eligible = (self.split.counts >= need).nonzero().flatten()
        c = self.split.images.shape[1]
        if normalize and data.mean is not None and data.std is not None:
            self.mean = torch.tensor(data.mean, dtype=torch.float32).view(1, c, 1, 1)
            self.std = torch.tensor(data.std, dtype=torch.float32).view(1, c, 1, 1)
        else:
            self.mean = self.std = None

    def _float(self, x: Tensor) -> Tensor:
        x = x.float().div_(255.0)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def sample(self, gen: torch.Generator) -> Task:
        n = self.shots + self.queries
        pick = self.eligible[torch.randperm(len(self.eligible), generator=gen)[: self.ways]]
        s_idx, q_idx = [], []
        for c in pick.tolist():
            members = self.split._by_class[c]
            chosen = members[torch.randperm(len(members), generator=gen)[:n]]
            s_idx.append(chosen[: self.shots])
            q_idx.append(chosen[self.shots :])
        labels = torch.arange(self.ways)
        xs = self._float(self.split.images[torch.cat(s_idx)])
        xq = self._float(self.split.images[torch.cat(q_idx)])
        return Task(
            xs, labels.repeat_interleave(self.shots), xq, labels.repeat_interleave(self.queries)
        )

    def sample_batch(self, gen: torch.Generator, size: int) -> list[Task]:
        return [self.sample(gen) for _ in range(size)]

    def fixed_episodes(self, count: int, seed: int) -> list[Task]:
        """The same ``count`` episodes for every learner and run with this seed."""
        gen = torch.Generator().manual_seed(seed)
        return [self.sample(gen) for _ in range(count)]
