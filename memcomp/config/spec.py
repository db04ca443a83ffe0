"""The pydantic model of a whole suite file, and its JSON Schema (``memcomp schema``).

Built from the registries (see :mod:`memcomp.config.components`) each time they change, so every
check (unknown keys and names, types, ranges, list-valued learner parameters) and the schema come
from one model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from memcomp.config.budgets import BudgetEntry
from memcomp.config.components import registry_key, spec_union
from memcomp.config.executors import executor_model
from memcomp.config.problems import NAME_PATTERN
from memcomp.config.settings import (
    Setting,
    Strict,
    TestConfig,
    TestOverrides,
    TrainConfig,
    TrainOverrides,
)

AXES = ("datasets", "settings", "backbones", "learners")  # required at the top or in each part
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Seeds = Annotated[list[Seed], Field(min_length=1)]
_cache: dict[tuple[Any, ...], tuple[type[BaseModel], type[BaseModel]]] = {}


def _axes(part: bool) -> dict[str, Any]:
    def entries(kind: str, what: str) -> Any:
        item = spec_union(kind)
        # default None (absent) but not nullable: the union's Discriminator is not hashable
        return (Annotated[list[item], Field(min_length=1)], Field(None, description=what))

    train = (TrainOverrides | None, Field(None, description="merged key by key over train"))
    test = (TestOverrides | None, Field(None, description="merged key by key over test"))
    return {
        "seeds": (Seeds | None, Field(None, description="one cell per seed (default [0])")),
        "datasets": entries("dataset", "datasets (registered names and their parameters)"),
        "settings": (
            Annotated[list[Setting], Field(min_length=1)] | None,
            Field(None, description="N-way K-shot settings"),
        ),
        "backbones": entries("backbone", "feature extractors"),
        "train": train if part else (TrainConfig, Field(default_factory=TrainConfig)),
        "test": test if part else (TestConfig, Field(default_factory=TestConfig)),
        "learners": entries("learner", "learners; a list-valued parameter gives a cell per value"),
    }


def suite_models() -> tuple[type[BaseModel], type[BaseModel]]:
    """(the suite file's model, the model of one ``parts`` entry), for the current registries."""
    key = registry_key()
    if key not in _cache:
        part = create_model(
            "Part",
            __base__=Strict,
            __doc__="a block of cells: each key replaces the top-level one for this part "
            "(train/test: key by key); cells are the concatenation over parts",
            name=(str, Field("", max_length=100, description="documentation only")),
            description=(str, ""),
            **_axes(part=True),
        )
        suite = create_model(
            "Suite",
            __base__=Strict,
            __doc__="a memcomp suite: the cross product of its axes (or the concatenation of "
            "its parts)",
            name=(str, Field(pattern=NAME_PATTERN, max_length=100)),
            description=(str, ""),
            device=(Literal["auto", "cpu", "cuda"], "auto"),
            **_axes(part=False),
            parts=(Annotated[list[part], Field(min_length=1)], None),  # type: ignore[valid-type]
            budgets=(
                list[BudgetEntry] | None,
                Field(None, description="memory budgets of cells (memcomp check)"),
            ),
            plugins=(
                list[Annotated[str, Field(min_length=1)]] | None,
                Field(
                    None,
                    description="modules imported before the suite is validated (and in every "
                    "cell process): they register learners, datasets or backbones",
                ),
            ),
            executor=(
                executor_model() | None,
                Field(None, description="where cells run (README: Many GPUs and clusters)"),
            ),
        )
        _cache[key] = suite, part
    return _cache[key]


def suite_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of suite files: pydantic's schema of the suite model."""
    schema = suite_models()[0].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "memcomp suite"
    schema["patternProperties"] = {"^x-": {"description": "ignored (e.g. to hold YAML anchors)"}}
    schema["anyOf"] = [{"required": list(AXES)}, {"required": ["parts"]}]
    return schema
