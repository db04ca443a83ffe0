"""The keys of one memory budget, in a budget file or a suite's ``budgets:`` section (torch-free).

The suite model types ``budgets:`` with :class:`BudgetEntry`, so ``memcomp validate`` and ``run``
refuse a misspelt or out-of-range budget key as they refuse any other; ``memcomp check``
(:mod:`memcomp.budgets.spec`) merges each entry over the defaults and checks its components.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memcomp.config.settings import MAX_TASKS

BudgetSource = Literal["cuda", "cpu-estimate"]
TOLERANCE = re.compile(r"^\+?\s*(\d+(?:\.\d*)?)\s*(%|MB)$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetKeys(_Strict):
    """Keys a budget and the ``defaults`` block share (components are merged, then checked)."""

    dataset: dict[str, Any] | None = None
    backbone: dict[str, Any] | None = None
    setting: dict[str, Any] | None = None
    learner: dict[str, Any] | None = None
    meta_batch: int | None = Field(None, ge=1, le=MAX_TASKS)
    iterations: int | None = Field(None, ge=1, le=100)
    dtype: Literal["float32", "float64"] | None = None
    seed: int | None = Field(None, ge=0, lt=2**32)
    tolerance: str | None = Field(None, pattern=TOLERANCE.pattern)
    source: BudgetSource | None = None


class BudgetEntry(BudgetKeys):
    """One budget: the cell's keys over the defaults, and its bounds."""

    name: str | None = None
    limit_mb: float | None = Field(None, gt=0, allow_inf_nan=False)
    baseline_mb: float | None = Field(None, ge=0, allow_inf_nan=False)
