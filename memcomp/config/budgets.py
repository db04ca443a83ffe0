"""The keys of one memory budget, in a budget file or a suite's ``budgets:`` section (torch-free).

The suite model types ``budgets:`` with :class:`BudgetEntry`, so ``memcomp validate`` and ``run``
refuse a misspelt or out-of-range budget key as they refuse any other; ``memcomp check``
(:mod:`memcomp.budgets.spec`) merges each entry over the defaults and checks its components.
A limit or baseline is a number of the stated source, or one number per memory source
(``{cpu-estimate: 11.41, cuda: 13.27}``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from memcomp.config.problems import TAG, Loc
from memcomp.config.settings import MAX_TASKS
from memcomp.registry import unknown_name_message

SOURCES = ("cpu-estimate", "cuda")  # memory sources a budget may keep numbers for
BudgetSource = Literal["cuda", "cpu-estimate"]
TOLERANCE = re.compile(r"^\+?\s*(\d+(?:\.\d*)?)\s*(%|MB)$", re.IGNORECASE)
ONE, PER_SOURCE = TAG + "one", TAG + "per-source"


def _one_or_per_source(value: Any) -> str:
    return PER_SOURCE if isinstance(value, dict) else ONE


def _per_source(number: Any) -> Any:
    """A number of the stated source, or a mapping ``{cpu-estimate: x, cuda: y}``."""
    return Annotated[
        Union[  # noqa: UP007 - Annotated members need the Union spelling
            Annotated[number, Tag(ONE)],
            Annotated[dict[BudgetSource, number], Field(min_length=1), Tag(PER_SOURCE)],
        ],
        Discriminator(_one_or_per_source),
    ]


def source_key_problems(out: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """An unknown source in a per-source ``limit_mb`` / ``baseline_mb`` mapping, said as one at
    its key (pydantic puts ``[key]`` last): the same words in a budget file and in a suite."""
    fixed = []
    for loc, msg in out:
        if len(loc) > 2 and loc[-1] == "[key]" and loc[-3] in ("limit_mb", "baseline_mb"):
            loc, msg = loc[:-1], unknown_name_message("memory source", str(loc[-2]), list(SOURCES))
        fixed.append((loc, msg))
    return fixed


Limit = _per_source(Annotated[float, Field(gt=0, allow_inf_nan=False)])
Baseline = _per_source(Annotated[float, Field(ge=0, allow_inf_nan=False)])


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
    """One budget: the cell's keys over the defaults, and its bounds (per source or not)."""

    name: str | None = None
    limit_mb: Limit | None = None
    baseline_mb: Baseline | None = None
