"""A cell: one fully specified run (dataset, setting, backbone, learner, train, test, seed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from memcomp.config import Setting, TestConfig, TrainConfig


@dataclass(frozen=True)
class Component:
    """A registered component by name with its (validated, scalar) parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})" if inner else self.name


@dataclass(frozen=True)
class Cell:
    """One run of the cross product; ``id`` is stable: a hash of the full configuration."""

    suite: str
    dataset: Component
    setting: Setting
    backbone: Component
    learner: Component
    train: TrainConfig
    test: TestConfig
    seed: int

    def config(self) -> dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        return {
            "dataset": {"name": self.dataset.name, **self.dataset.params},
            "setting": self.setting.model_dump(),
            "backbone": {"name": self.backbone.name, **self.backbone.params},
            "learner": {"name": self.learner.name, **self.learner.params},
            # checkpointing changes how a cell runs, not what it computes: not part of the id
            "train": self.train.model_dump(exclude={"checkpoint_every"}),
            "test": self.test.model_dump(),
            "seed": self.seed,
        }

    @property
    def id(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def label(self) -> str:
        s = self.setting
        return (
            f"{self.learner.label()} | {self.dataset.name} {s.ways}w{s.shots}s | "
            f"{self.backbone.label()} | seed {self.seed}"
        )
