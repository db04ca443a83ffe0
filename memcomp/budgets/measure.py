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


def _device_for(source: str, device: str) -> tuple[str | None, str]:
    """(device to measure on, or None when skipped, and why)."""
    if source == "cpu-estimate":
        return "cpu", ""
    if device == "cpu":
        return None, "cuda budget, --device cpu"
    if not _cuda_available():
        return None, "cuda budget, no CUDA GPU here"
    return "cuda", ""


def check_budgets(
    budgets: BudgetFile, device: str = "auto", measure: Measure | None = None
) -> list[Outcome]:
    """Measure every budget (same cell measured once) and judge it."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda (got {device!r})")
    if device == "cuda" and not _cuda_available():
        raise InputError("--device cuda requested but no CUDA GPU is available")
    measure = measure or _default_measure
    cache: dict[tuple[str, str, int, str], tuple[MemoryResult | Exception, float]] = {}
    outcomes = []
    for b in budgets.budgets:
        dev, why = _device_for(b.source, device)
        if dev is None:
            outcomes.append(Outcome(b, "skipped", message=why))
            continue
        key = (b.cell.id, dev, b.iterations, b.source)
        if key not in cache:
            t0 = time.perf_counter()
            try:
                got: MemoryResult | Exception = measure(b.cell, dev, b.iterations, b.source)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - a crashing cell fails its budget
                got = e
            cache[key] = (got, time.perf_counter() - t0)
        got, secs = cache[key]
        outcomes.append(_judge(b, got, secs))
    return outcomes


def _judge(b: Budget, got: MemoryResult | Exception, secs: float) -> Outcome:
    if isinstance(got, Exception):
        msg = f"{type(got).__name__}: {' '.join(str(got).split())[:300]}"
        return Outcome(b, "error", message=msg, seconds=secs)
    if got.peak_mb is None:
        return Outcome(b, "error", message=f"source {got.source} measured nothing", seconds=secs)
    allowed = b.allowed_mb()
    out = Outcome(b, "ok", got.peak_mb, allowed, seconds=secs)
    if allowed is None:
        out.verdict, out.message = "recorded", "no bound yet"
    elif got.peak_mb > allowed:
        out.verdict = "exceeded"
        out.message = f"peak {got.peak_mb:.3f} MB > allowed {allowed:.3f} MB ({b.bound_text()})"
    return out
