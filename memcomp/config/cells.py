"""A cell: one fully specified run (dataset, setting, backbone, learner, train, test, seed).

Here live THE cell serialisation (:func:`to_json` / :func:`from_json`, also what the cell id
hashes) and THE label function (:func:`label`), used by every layer that names a cell.

A cell's components are typed: each holds an instance of its registered parameter model (every
field and model validator has run once, when the suite was expanded), which the engine hands to
the component as it is. A component given as a plain mapping (by hand, or from JSON) is validated
by its registry when the cell is made, so a cell is never built from unchecked parameters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from memcomp.config.registries import KINDS
from memcomp.config.settings import Setting, TestConfig, TrainConfig, train_identity
from memcomp.registry import ADDED_LATER, Params

Loc = tuple[str | int, ...]


def label(name: str, params: Mapping[str, Any] | None = None, skip: tuple[str, ...] = ()) -> str:
    """``maml(inner_lr=0.4,inner_steps=5)``: a name and its parameters (sorted; ``skip`` left
    out), the one way memcomp writes a component in tables, logs and messages."""
    items = sorted((k, v) for k, v in (params or {}).items() if k not in skip)
    inner = ",".join(f"{k}={v}" for k, v in items)
    return f"{name}({inner})" if inner else name


def identity(model: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A component's parameters as its cell id hashes them: every field, except those marked
    :data:`ADDED_LATER` while they hold their default."""
    values = dict(model)
    if not isinstance(model, BaseModel):
        return values
    for name, info in type(model).model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(ADDED_LATER) and values[name] == info.default:
            del values[name]
    return values


@dataclass(frozen=True)
class Component:
    """A registered component by name with its validated parameters.

    ``model`` is an instance of the component's own parameter model (in a :class:`Cell` always;
    a mapping given by hand is validated when the cell is made); :attr:`params` are its values as
    a plain dict, for ids, labels and results columns.
    """

    name: str
    model: Params | Mapping[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """The parameter values (every field, defaults filled in), as a new plain dict."""
        return dict(self.model)

    @property
    def identity(self) -> dict[str, Any]:
        """The parameters the cell id hashes: :attr:`params` without the parameters added later
        that hold their defaults (``memcomp.registry.added_later``)."""
        return identity(self.model)

    def label(self) -> str:
        return label(self.name, self.params)


def typed(kind: str, component: Component) -> Component:
    """``component`` with its parameters as an instance of its registered model (validated by
    that model, strictly, as a suite's values are; a component already typed is returned)."""
    if isinstance(component.model, Params):
        return component
    from memcomp.config.registries import registry

    model = registry(kind).get(component.name).params
    return Component(component.name, model.model_validate(dict(component.model), strict=True))


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

    def __post_init__(self) -> None:
        for kind in KINDS:
            object.__setattr__(self, kind, typed(kind, getattr(self, kind)))

    def config(self) -> dict[str, Any]:
        """Everything that determines the result, as plain JSON-able data."""
        return {
            "dataset": {"name": self.dataset.name, **self.dataset.identity},
            "setting": self.setting.model_dump(),
            "backbone": {"name": self.backbone.name, **self.backbone.identity},
            "learner": {"name": self.learner.name, **self.learner.identity},
            "train": train_identity(self.train),  # without checkpoint_every; precision normalised
            "test": self.test.model_dump(),
            "seed": self.seed,
        }

    @cached_property
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
