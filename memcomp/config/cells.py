"""A cell: one fully specified run (dataset, setting, backbone, learner, train, test, seed).

Here live THE cell serialisation (:func:`to_json` / :func:`from_json`, also what the cell id
hashes) and THE label function (:func:`label`), used by every layer that names a cell.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memcomp.config.settings import Setting, TestConfig, TrainConfig, train_identity

Loc = tuple[str | int, ...]


def label(name: str, params: Mapping[str, Any] | None = None, skip: tuple[str, ...] = ()) -> str:
    """``maml(inner_lr=0.4,inner_steps=5)``: a name and its parameters (sorted; ``skip`` left
    out), the one way memcomp writes a component in tables, logs and messages."""
    items = sorted((k, v) for k, v in (params or {}).items() if k not in skip)
    inner = ",".join(f"{k}={v}" for k, v in items)
    return f"{name}({inner})" if inner else name


@dataclass(frozen=True)
class Component:
    """A registered component by name with its (validated, scalar) parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return label(self.name, self.params)


@dataclass(frozen=True)
class Cell:
    """One run of the cross product; ``id`` is stable: a hash of the full configuration.

    ``origin`` (not part of the configuration) maps ``datasets``/``settings``/``backbones``/
    ``learners``/``seeds`` to the field path where this cell's value is written in its suite.
    """

    suite: str
    dataset: Component
    setting: Setting
    backbone: Component
    learner: Component
    train: TrainConfig
    test: TestConfig
    seed: int
    origin: Mapping[str, Loc] | None = field(default=None, compare=False, repr=False)

    def config(self) -> dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        return {
            "dataset": {"name": self.dataset.name, **self.dataset.params},
            "setting": self.setting.model_dump(),
            "backbone": {"name": self.backbone.name, **self.backbone.params},
            "learner": {"name": self.learner.name, **self.learner.params},
            "train": train_identity(self.train),  # without checkpoint_every; precision normalised
            "test": self.test.model_dump(),
            "seed": self.seed,
        }

    @property
    def id(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def where(self, key: str) -> Loc:
        """The field path of this cell's ``key`` (e.g. ``('parts', 1, 'learners', 0)``)."""
        return tuple((self.origin or {}).get(key, (key,)))

    def label(self) -> str:
        s = self.setting
        precision = self.train.precision or self.train.dtype
        return (
            f"{self.learner.label()} | {self.dataset.name} {s.ways}w{s.shots}s | "
            f"{self.backbone.label()} | seed {self.seed}"
            + (f" | {precision}" if precision != "float32" else "")
        )


def to_json(cell: Cell) -> dict[str, Any]:
    """A cell as plain JSON data; :func:`from_json` rebuilds an equal cell (same id)."""
    return {
        "suite": cell.suite,
        "dataset": {"name": cell.dataset.name, "params": dict(cell.dataset.params)},
        "setting": cell.setting.model_dump(),
        "backbone": {"name": cell.backbone.name, "params": dict(cell.backbone.params)},
        "learner": {"name": cell.learner.name, "params": dict(cell.learner.params)},
        "train": cell.train.model_dump(),
        "test": cell.test.model_dump(),
        "seed": cell.seed,
        "id": cell.id,
    }


def from_json(data: Mapping[str, Any]) -> Cell:
    """Inverse of :func:`to_json`; checks the rebuilt cell has the recorded id."""
    cell = Cell(
        suite=data["suite"],
        dataset=Component(data["dataset"]["name"], data["dataset"]["params"]),
        setting=Setting(**data["setting"]),
        backbone=Component(data["backbone"]["name"], data["backbone"]["params"]),
        learner=Component(data["learner"]["name"], data["learner"]["params"]),
        train=TrainConfig(**data["train"]),
        test=TestConfig(**data["test"]),
        seed=int(data["seed"]),
    )
    if "id" in data and cell.id != data["id"]:
        raise ValueError(f"cell id changed in transfer: {data['id']} -> {cell.id}")
    return cell
