"""Configuration models shared by suites, cells and the runner (pydantic, unknown keys rejected)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(Strict):
    """An N-way K-shot setting with Q query images per class."""

    ways: int = Field(5, ge=2)
    shots: int = Field(1, ge=1)
    queries: int = Field(15, ge=1)


class TrainConfig(Strict):
    """Meta-training loop options."""

    iterations: int = Field(200, ge=1, description="outer (meta) iterations")
    meta_batch: int = Field(4, ge=1, description="tasks per meta-iteration")
    eval_every: int = Field(25, ge=1, description="validate every this many iterations")
    val_episodes: int = Field(100, ge=1, description="validation episodes per evaluation")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.001, gt=0, allow_inf_nan=False, description="outer learning rate")
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: int | None = Field(
        None, ge=1, description="save a resumable checkpoint every this many iterations"
    )


class TestConfig(Strict):
    """Meta-test options."""

    __test__ = False  # not a pytest class

    episodes: int = Field(600, ge=1, description="fixed test episodes (>= 600 for papers)")
    protocol: Literal["native", "head-finetune"] = "native"
    finetune_steps: int = Field(20, ge=0, description="head-finetune: head GD steps")
    finetune_lr: float = Field(0.05, gt=0, allow_inf_nan=False, description="head-finetune lr")
