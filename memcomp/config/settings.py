"""Configuration models shared by suites, cells and the runner (pydantic, unknown keys rejected).

Upper bounds (``le=``) are stated here once: they keep a typo such as ``meta_batch: 1000000000``
from validating and then running forever; the JSON Schema and the messages come from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from memcomp.registry import MAX_STEPS

MAX_ITERATIONS = 10_000_000  # meta-iterations of one cell
MAX_TASKS = 100_000  # tasks per meta-iteration, episodes per evaluation


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(Strict):
    """An N-way K-shot setting with Q query images per class."""

    ways: int = Field(5, ge=2, le=10_000)
    shots: int = Field(1, ge=1, le=100_000)
    queries: int = Field(15, ge=1, le=100_000)


class TrainConfig(Strict):
    """Meta-training loop options."""

    iterations: int = Field(200, ge=1, le=MAX_ITERATIONS, description="outer (meta) iterations")
    meta_batch: int = Field(4, ge=1, le=MAX_TASKS, description="tasks per meta-iteration")
    eval_every: int = Field(25, ge=1, description="validate every this many iterations")
    val_episodes: int = Field(
        100, ge=1, le=MAX_TASKS, description="validation episodes per evaluation"
    )
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.001, gt=0, allow_inf_nan=False, description="outer learning rate")
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: int | None = Field(
        None, ge=1, description="save a resumable checkpoint every this many iterations"
    )


class TestConfig(Strict):
    """Meta-test options."""

    __test__ = False  # not a pytest class

    episodes: int = Field(
        600, ge=1, le=MAX_TASKS, description="fixed test episodes (>= 600 for papers)"
    )
    protocol: Literal["native", "head-finetune"] = "native"
    finetune_steps: int = Field(20, ge=0, le=MAX_STEPS, description="head-finetune: head GD steps")
    finetune_lr: float = Field(0.05, gt=0, allow_inf_nan=False, description="head-finetune lr")


def overrides(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional: the keys given are merged over a full config.

    Each given value is checked by the same field constraints, so merging the given keys over a
    valid config gives a valid config without validating it again.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann: Any = info.annotation
        copy = Field(None, description=info.description or "", json_schema_extra=None)
        copy.metadata = list(info.metadata)
        fields[name] = (ann, copy)  # default None, but an explicit null is checked
    return create_model(f"{model.__name__}Overrides", __base__=Strict, **fields)


TrainOverrides = overrides(TrainConfig)
TestOverrides = overrides(TestConfig)


def merged(base: BaseModel, over: BaseModel | None) -> Any:
    """``base`` with the keys given in ``over`` (an overrides model) replaced."""
    if over is None:
        return base
    return base.model_copy(update=over.model_dump(exclude_unset=True))
