"""Fake registered components and a valid suite, shared by the suite tests; a tiny runnable
suite on the fake-tiny dataset, shared by the run, fault and cluster tests."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from memcomp.data import DATASETS, DatasetParams
from memcomp.learners import LEARNERS, LearnerParams

DATA = "t-data"
MAML = "t-maml"
MRML = "t-mrml"


class FakeDataParams(DatasetParams):
    root: str = "nowhere"


class FakeMamlParams(LearnerParams):
    first_order: bool = False


class FakeMrmlParams(LearnerParams):
    cg_steps: int = Field(10, ge=0)
    l2: float = Field(0.01, gt=0, allow_inf_nan=False)


@contextlib.contextmanager
def fake_components() -> Iterator[None]:
    """Register a fake dataset and two fake learners; remove them afterwards."""
    added = [
        (DATASETS, DATA, "fake dataset", FakeDataParams),
        (LEARNERS, MAML, "fake maml", FakeMamlParams),
        (LEARNERS, MRML, "fake mrml", FakeMrmlParams),
    ]
    for reg, name, summary, params in added:
        reg._entries.pop(name, None)
        reg.register(name, summary, params)(lambda *a: None)
    try:
        yield
    finally:
        for reg, name, _, _ in added:
            reg._entries.pop(name, None)


VALID: dict[str, Any] = {
    "name": "quick_start-1",
    "description": "test suite",
    "seeds": [0],
    "device": "auto",
    "datasets": [{"name": DATA, "image_size": 28}],
    "settings": [{"ways": 5, "shots": 1, "queries": 15}],
    "backbones": [{"name": "conv4", "hidden": 32}],
    "train": {"iterations": 200, "meta_batch": 4, "eval_every": 25, "lr": 0.001},
    "test": {"episodes": 600, "protocol": "native"},
    "learners": [
        {"name": MAML, "inner_steps": 5, "inner_lr": 0.4},
        {
            "name": MRML,
            "inner_steps": [5, 20],
            "inner_lr": 0.1,
            "cg_steps": 20,
            "l2": 0.01,
            "train": {"lr": 0.002},
        },
    ],
}


def valid_suite() -> dict[str, Any]:
    return copy.deepcopy(VALID)


FAKE_TRAIN: dict[str, Any] = {
    "iterations": 6, "meta_batch": 2, "eval_every": 2, "val_episodes": 3, "lr": 0.01,
}  # fmt: skip


def fake_tiny_suite(
    learners: list[dict[str, Any]],
    *,
    name: str = "fake",
    seeds: Iterable[int] = (0,),
    episodes: int = 5,
    train: dict[str, Any] | None = None,
    **over: Any,
) -> dict[str, Any]:
    """A suite of ``learners`` on fake-tiny (3-way 1-shot, conv4 of 4 channels): seconds a cell.

    Needs the ``fake_learners`` test plugin (fake-tiny and the fake learners)."""
    return {
        "name": name,
        "seeds": list(seeds),
        "device": "cpu",
        "datasets": [{"name": "fake-tiny"}],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {**FAKE_TRAIN, **(train or {})},
        "test": {"episodes": episodes},
        "learners": learners,
        **over,
    }
