"""``execution: auto``: how a cell runs its meta-batch, chosen before it trains.

ONE code path for ``memcomp run`` (per cell, :func:`choose_into`) and ``memcomp plan``
(:func:`choose`), on the predictions of :mod:`memcomp.engine.predict`:

- **GPU**: the largest task chunk whose predicted need fits the budget, the free CUDA memory
  (plus what this process holds already) or ``--memory-limit``
  (:func:`memcomp.measure.budget.cuda_budget`). The need of a prediction is
  ``SAFETY x held + HEADROOM_MB``: ``held`` is what the cell holds at its peak by the CPU
  estimate; ``SAFETY`` = 1.10 covers CUDA peaks up to 5% above the estimate (0.952 .. 1.004
  measured on an H200) and the caching allocator's rounding; ``HEADROOM_MB`` = 256 the cuDNN /
  cuBLAS workspaces the estimate cannot see. The search: the whole meta-batch first; else chunks
  of 2 and 4 tasks, a straight line through them (peaks are affine in the chunk from 2 tasks on,
  tested; one task takes other code paths) gives the largest chunk that fits, which is then
  predicted itself and stepped down while it does not fit. No chunk of 2 fits: sequential.
  Nothing fits: sequential anyway (the cell will most likely end as ``status=oom``).
- **CPU**: the learner class's measured rule (``cpu_execution``,
  :func:`memcomp.learners.driver.rule_execution`); nothing predicted unless asked (plan).

An explicit ``execution: sequential | batched`` or ``task_chunk`` is kept as written (its need
is still predicted for the plan). Auto's chunked choices retry once with half the chunk on an
out-of-memory (:mod:`memcomp.learners.driver`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from memcomp.config.cells import Cell
from memcomp.engine.predict import CellProbe, Prediction, PredictionError, probe_for
from memcomp.engine.row import final_columns
from memcomp.learners.driver import Execution, requested_execution, rule_execution
from memcomp.measure.budget import MemoryBudget, cuda_budget

SAFETY = 1.10
HEADROOM_MB = 256.0
MAX_PROBES = 8  # predictions per choice at most (the search usually needs 1 to 5)


@dataclass
class Choice:
    """How a cell runs (``execution``), with the prediction of that choice and the budget."""

    execution: Execution
    prediction: Prediction | None = None
    budget: MemoryBudget | None = None
    probes: int = 0

    @property
    def need_mb(self) -> float | None:
        return None if self.prediction is None else need_mb(self.prediction)

    @property
    def fits(self) -> bool | None:
        """Whether the prediction fits the budget (None: no prediction or no budget)."""
        if self.need_mb is None or self.budget is None:
            return None
        return self.need_mb <= self.budget.mb


def need_mb(p: Prediction) -> float:
    """What a prediction needs on a GPU, margins included (module docstring)."""
    return SAFETY * p.held_mb + HEADROOM_MB


def is_auto(params: Any) -> bool:
    """``execution: auto`` with no explicit ``task_chunk``: auto chooses."""
    return (
        getattr(params, "execution", None) == "auto" and getattr(params, "task_chunk", None) is None
    )


def choose(
    cell: Cell,
    in_shape: tuple[int, int, int],
    device_type: str,
    budget: MemoryBudget | None = None,
    predict: bool = True,
    probe: CellProbe | None = None,
) -> Choice:
    """The execution of ``cell`` on ``device_type`` (``cuda`` or ``cpu``) within ``budget``.

    ``predict=False`` (a CPU run) chooses without predicting anything."""
    probe = probe if probe is not None else probe_for(cell, in_shape)
    learner = probe.pristine
    cls = type(learner)
    if "execution" not in type(learner.params).model_fields:
        ex = Execution("sequential", None, f"{cls.__name__} has no execution parameter")
        return _with_prediction(ex, probe, budget, predict)
    if not is_auto(learner.params):
        return _with_prediction(requested_execution(learner.params, cls), probe, budget, predict)
    if device_type != "cuda":
        return _with_prediction(rule_execution(cls), probe, budget, predict)
    if budget is None:
        raise ValueError("auto execution on a GPU needs a memory budget")
    return _search(probe, budget)


def _with_prediction(
    ex: Execution, probe: CellProbe, budget: MemoryBudget | None, predict: bool
) -> Choice:
    if not predict:
        return Choice(ex, None, budget)
    mode = ex.mode if (ex.mode == "sequential" or probe.batchable()) else "sequential"
    chunk = ex.chunk_used(probe.cell.train.meta_batch)
    try:
        pred = probe.predict(mode, chunk)
    except PredictionError as e:
        ex.reason += f"; {e}"
        return Choice(ex, None, budget, 1)
    return Choice(ex, pred, budget, 1)


def _search(probe: CellProbe, budget: MemoryBudget) -> Choice:
    """The largest fitting chunk (module docstring); ``probes`` counts the predictions made."""
    meta_batch = probe.cell.train.meta_batch
    cap = budget.mb
    made: dict[int, Prediction] = {}

    def need(c: int) -> float:
        if c not in made:
            made[c] = probe.predict("batched", c)
        return need_mb(made[c])

    def sequential(why: str) -> Choice:
        ex = Execution("sequential", None, why)
        pred = probe.predict("sequential", 1)
        if need_mb(pred) > cap:
            ex.reason = (
                f"auto on cuda: does not fit even sequentially (need {need_mb(pred):.0f} MB > "
                f"{budget.source}); runs sequentially, expect status=oom"
            )
        return Choice(ex, pred, budget, len(made) + 1)

    try:
        if meta_batch < 2 or not probe.batchable():
            why = "one task a meta-batch" if meta_batch < 2 else "tasks cannot be stacked"
            return sequential(f"auto on cuda: {why}: sequential")
        if need(meta_batch) <= cap:
            ex = Execution(
                "batched", None,
                f"auto on cuda: the whole meta-batch ({meta_batch} tasks) fits: need "
                f"{need(meta_batch):.0f} MB <= {budget.source}", retry_on_oom=True,
            )  # fmt: skip
            return Choice(ex, made[meta_batch], budget, len(made))
        if meta_batch == 2 or need(2) > cap:
            return sequential(
                f"auto on cuda: a chunk of 2 tasks does not fit (need {need(2):.0f} MB > "
                f"{budget.source}): sequential"
            )
        best = _largest_fitting(need, cap, meta_batch)
        larger = f"; {best + 1} tasks: {need_mb(made[best + 1]):.0f} MB" if best + 1 in made else ""
        ex = Execution(
            "batched", best,
            f"auto on cuda: largest chunk that fits: {best} of {meta_batch} tasks, need "
            f"{need(best):.0f} MB <= {budget.source}{larger}", retry_on_oom=True,
        )  # fmt: skip
        return Choice(ex, made[best], budget, len(made))
    except PredictionError as e:
        return _fallback(probe, budget, e)


def _largest_fitting(need: Any, cap: float, meta_batch: int) -> int:
    """Largest chunk in [2, meta_batch - 1] whose need fits, chunk 2 known to fit: the line
    through 2 and 4 gives the candidate, predicted and stepped down while it does not fit."""
    if meta_batch <= 4:
        for c in range(meta_batch - 1, 2, -1):
            if need(c) <= cap:
                return c
        return 2
    slope = (need(4) - need(2)) / 2
    guess = meta_batch - 1 if slope <= 0 else 2 + math.floor((cap - need(2)) / slope)
    c = max(2, min(meta_batch - 1, guess))
    for _ in range(MAX_PROBES):
        if c <= 2 or need(c) <= cap:
            return c
        over = need(c) - cap
        c = max(2, min(c - 1, c - math.ceil(over / slope) if slope > 0 else c - 1))
    return 2


def _fallback(probe: CellProbe, budget: MemoryBudget, error: PredictionError) -> Choice:
    """No prediction possible: sequential, the least memory, stated."""
    ex = Execution("sequential", None, f"auto on cuda: no prediction ({error}): sequential")
    return Choice(ex, None, budget, 0)


# ----------------------------------------------------------------------------- memcomp run


def choose_for_run(cell: Cell, learner: Any, device: torch.device, in_shape: Any) -> Choice:
    """The choice for a cell about to train on ``device``: on a GPU within
    :func:`~memcomp.measure.budget.cuda_budget`; on a CPU the rule, nothing predicted."""
    if device.type == "cuda" and is_auto(getattr(learner, "params", None)):
        return choose(cell, tuple(in_shape), "cuda", cuda_budget(device))
    params = learner.params
    if "execution" not in type(params).model_fields:
        return Choice(Execution("sequential", None, "no execution parameter"))
    if not is_auto(params):
        return Choice(requested_execution(params, type(learner)))
    return Choice(rule_execution(type(learner)))


def execution_columns(choice: Choice, meta_batch: int) -> dict[str, Any]:
    """The results-row columns of a choice (:func:`final_columns` updates them as it runs)."""
    pred = choice.prediction
    return {
        "predicted_peak_mb": None if pred is None else pred.peak_mb,
        "memory_budget_mb": None if choice.budget is None else choice.budget.mb,
        **final_columns(choice.execution, meta_batch),
    }


def choose_into(
    row: dict[str, Any], cell: Cell, learner: Any, device: torch.device, in_shape: Any
) -> Choice:
    """Choose, set ``learner.execution_plan``, write the row's columns and a line to the cell's
    log (stderr, kept in ``logs/<id>.log`` when the cell fails)."""
    choice = choose_for_run(cell, learner, device, in_shape)
    learner.execution_plan = choice.execution
    row.update(execution_columns(choice, cell.train.meta_batch))
    print(f"memcomp: cell {cell.id}: {describe(choice, cell.train.meta_batch)}", file=sys.stderr)
    return choice


def describe(choice: Choice, meta_batch: int) -> str:
    """One line: mode, chunk, prediction and why."""
    ex, pred = choice.execution, choice.prediction
    chunk = ex.chunk_used(meta_batch)
    text = f"execution {ex.mode}"
    if ex.mode == "batched":
        text += f", {chunk} of {meta_batch} tasks a chunk"
    if pred is not None:
        text += f", predicted peak {pred.peak_mb:.1f} MB (held {pred.held_mb:.1f} MB, {pred.how})"
    return f"{text}: {ex.reason}"
