"""Measuring budgets (each distinct cell once) and judging each against its bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memcomp.budgets.spec import Budget, BudgetFile
from memcomp.config import Cell
from memcomp.errors import InputError

if TYPE_CHECKING:
    from memcomp.measure.memory import MemoryResult

Measure = Callable[..., "MemoryResult"]
VERDICTS = ("ok", "exceeded", "error", "skipped", "recorded")


@dataclass
class Outcome:
    budget: Budget
    verdict: str  # ok | exceeded | skipped | error | recorded
    measured_mb: float | None = None
    allowed_mb: float | None = None
    source: str = "cpu-estimate"  # the memory source measured (and judged by)
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.verdict in ("exceeded", "error")


def _default_measure(cell: Cell, device: str, iterations: int, source: str) -> MemoryResult:
    from memcomp.engine import measure_cell_memory

    return measure_cell_memory(cell, device=device, iterations=iterations, source=source)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def measured_source(device: str) -> tuple[str, str]:
    """(device to measure on, memory source): the device's own source, ``cuda`` on a GPU (and
    for ``auto`` where one is visible), else the CPU estimate."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda (got {device!r})")
    if device == "cuda" and not _cuda_available():
        raise InputError("--device cuda requested but no CUDA GPU is available")
    if device == "cuda" or (device == "auto" and _cuda_available()):
        return "cuda", "cuda"
    return "cpu", "cpu-estimate"


def check_budgets(
    budgets: BudgetFile, device: str = "auto", measure: Measure | None = None, update: bool = False
) -> list[Outcome]:
    """Measure every budget (same cell measured once) with the device's memory source and judge
    it by that source's numbers; a budget without any for it is skipped (``update``: measured,
    to record them)."""
    dev, source = measured_source(device)
    measure = measure or _default_measure
    cache: dict[tuple[str, int], tuple[MemoryResult | Exception, float]] = {}
    outcomes = []
    for b in budgets.budgets:
        if not update and not b.has_numbers(source):
            why = f"no {source} baseline (record one: memcomp check FILE --device {dev} --update)"
            outcomes.append(Outcome(b, "skipped", source=source, message=why))
            continue
        key = (b.cell.id, b.iterations)
        if key not in cache:
            t0 = time.perf_counter()
            try:
                got: MemoryResult | Exception = measure(b.cell, dev, b.iterations, source)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - a crashing cell fails its budget
                got = e
            cache[key] = (got, time.perf_counter() - t0)
        got, secs = cache[key]
        outcomes.append(_judge(b, source, got, secs))
    return outcomes


def _judge(b: Budget, source: str, got: MemoryResult | Exception, secs: float) -> Outcome:
    if isinstance(got, Exception):
        msg = f"{type(got).__name__}: {' '.join(str(got).split())[:300]}"
        return Outcome(b, "error", source=source, message=msg, seconds=secs)
    if got.peak_mb is None:
        return Outcome(
            b, "error", source=source, message=f"source {got.source} measured nothing", seconds=secs
        )
    if got.source != source:  # a measurement of another source must never be judged
        msg = f"measured {got.source}, expected {source}"
        return Outcome(b, "error", source=source, message=msg, seconds=secs)
    allowed = b.allowed_mb(source)
    out = Outcome(b, "ok", got.peak_mb, allowed, source=source, seconds=secs)
    if allowed is None:
        out.verdict, out.message = "recorded", f"no {source} bound yet"
    elif got.peak_mb > allowed:
        out.verdict = "exceeded"
        out.message = (
            f"peak {got.peak_mb:.3f} MB > allowed {allowed:.3f} MB ({b.bound_text(source)})"
        )
    return out
