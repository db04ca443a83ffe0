"""Rounding error of every learner's meta-gradient: float32, tf32 and bf16 against float64.

On the diagnostics problem's ONE set of weights and tasks (:mod:`memcomp.diagnose.sweep`), each
learner configuration computes its meta-gradient in float64 (the reference: the same algorithm,
only the arithmetic differs) and again in each lower precision, from the same weights cast to
float32 and the same tasks (``bf16``: ``torch.autocast(bfloat16)`` over float32 master weights;
``tf32``: float32 with TF32 matmuls and convolutions, CUDA only, exactly as a cell runs them:
:mod:`memcomp.measure.precision`). Each row gives the rounding error
``||g_p - g_64|| / ||g_64||`` and cosine, and, where the learner's bilevel problem has an exact
hypergradient, the error against it (so rounding and approximation error stand side by side),
with the cost of one meta-gradient in that precision.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from memcomp.config.settings import TrainConfig, planned_flags
from memcomp.diagnose.sweep import Config, Problem, SharedWeights, make_tasks, meta_gradient
from memcomp.diagnose.sweep import reference_for as _reference_for
from memcomp.learners import LEARNERS, Learner
from memcomp.measure.memory import MemoryMeter
from memcomp.measure.phases import active_meter
from memcomp.measure.precision import Autocast, PrecisionPlan, precision_flags, unsupported
from memcomp.types import Task

ROUNDING_PRECISIONS = ("float64", "float32", "tf32", "bf16")


def rounding_sweep(p: Problem) -> list[Config]:
    """One configuration per registered learner (maml at K = 5 and 20: rounding grows with the
    chain of products); learners without an entry here (plugins) at their ``test_params``."""
    head = {"l2": p.l2, "inner_lr": 0.3, "execution": "sequential"}
    seq = {"execution": "sequential"}
    chosen = [
        Config("maml", {"inner_steps": 5, "inner_lr": 0.1, **seq}, "precision"),
        Config("maml", {"inner_steps": 20, "inner_lr": 0.1, **seq}, "precision"),
        Config("fomaml", {"inner_steps": 5, "inner_lr": 0.1, **seq}, "precision"),
        Config("maml-recompute", {"inner_steps": 20, "inner_lr": 0.1, **seq}, "precision"),
        Config("anil", {"inner_steps": 20, "inner_lr": 0.3, **seq}, "precision"),
        Config("itd-bio", {**head, "inner_steps": 100, "features": "once"}, "precision"),
        Config("mrml", {**head, "inner_steps": 1000, "cg_steps": 20}, "precision"),
        Config("sama", {**head, "inner_steps": 100}, "precision"),
        Config("f2sa", {**head, "inner_steps": 1000, "lam": 100.0}, "precision"),
        Config(
            "imaml",
            {"lam": p.lam, "inner_steps": 20, "inner_lr": 0.05, "cg_steps": 20, **seq},
            "precision",
        ),
        Config("r2d2", {**seq}, "precision"),
    ]
    known = {c.learner for c in chosen}
    for name in sorted(LEARNERS.names()):
        if name not in known:
            params = dict(getattr(LEARNERS.get(name).factory, "test_params", {}) or {})
            chosen.append(Config(name, params, "precision"))
    return chosen


def plan_for(precision: str) -> PrecisionPlan:
    """The flags and autocast a cell of ``precision`` runs with."""
    return PrecisionPlan.from_flags(planned_flags(TrainConfig(precision=precision)))


def _flat64(g: Tensor) -> Tensor:
    return g.detach().to("cpu", torch.float64)


def compare(got: Tensor, ref: Tensor) -> tuple[float, float]:
    """(relative error, cosine) of ``got`` against ``ref``, in float64."""
    got, ref = _flat64(got), _flat64(ref)
    err = float((got - ref).norm() / ref.norm())
    return err, float(torch.nn.functional.cosine_similarity(got, ref, 0))


def timed_cost(
    learner: Learner,
    tasks: Sequence[Task],
    autocast: Autocast,
    device: torch.device,
    repeats: int,
    memory: bool,
) -> tuple[float, float | None]:
    """Median seconds of one meta-gradient in this precision (CUDA synchronised) and its peak
    memory above the weights and tasks (the CPU estimate on a CPU, CUDA's counter on a GPU)."""
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with autocast():
            meta_gradient(learner, tasks)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - t0)
    if not memory:
        return statistics.median(seconds), None
    meter = MemoryMeter(device, "auto", resident=[learner, list(tasks)])
    with active_meter(meter.phase), meter.measure(), autocast():
        meta_gradient(learner, tasks)
    return statistics.median(seconds), meter.result().peak_mb


def reference_of(config: Config, weights: SharedWeights) -> tuple[str, Any]:
    """(problem label, exact hypergradient function or None) of a configuration."""
    try:
        return _reference_for(config, weights)
    except ValueError:
        return "no exact reference", None


def run_rounding(
    configs: Sequence[Config],
    problem: Problem | None = None,
    precisions: Sequence[str] = ROUNDING_PRECISIONS,
    device: torch.device | str = "cpu",
    repeats: int = 3,
    memory: bool = True,
) -> list[dict[str, Any]]:
    """One row per configuration and precision: the rounding error against the same learner's
    float64 meta-gradient, the error against the exact hypergradient where there is one, cost.
    A precision ``device`` cannot run (tf32 on a CPU) is a row with its ``status`` and no
    numbers."""
    p = problem or Problem()
    device = torch.device(device)
    bad = sorted(set(precisions) - set(ROUNDING_PRECISIONS))
    if bad:
        raise ValueError(f"unknown precisions {bad} (valid: {', '.join(ROUNDING_PRECISIONS)})")
    # float64 first, always: it is every other precision's reference
    precisions = [q for q in ROUNDING_PRECISIONS if q in precisions or q == "float64"]
    weights, tasks64 = SharedWeights(p), make_tasks(p)
    exact_cache: dict[str, Tensor] = {}
    rows: list[dict[str, Any]] = []
    for config in configs:
        base = weights.learner(config.learner, config.params)  # float64, CPU
        label, reference = reference_of(config, weights)
        exact = None
        if reference is not None:
            unrolled = label.startswith("unrolled")  # depends on the step size too
            key = f"{label}|{sorted(config.params.items())}" if unrolled else label
            if key not in exact_cache:
                exact_cache[key] = reference(copy.deepcopy(base), tasks64)
            exact = exact_cache[key]
        ref64: Tensor | None = None
        for precision in precisions:
            row: dict[str, Any] = {
                "learner": config.learner,
                "problem": label,
                "varies": "precision",
                "precision": precision,
                "device": device.type,
                **{f"learner.{k}": v for k, v in base.params.model_dump().items()},
            }
            why = unsupported(precision, device)
            if why is not None:
                rows.append({**row, "status": "CUDA only" if device.type != "cuda" else why})
                continue
            plan = plan_for(precision)
            learner = copy.deepcopy(base).to(device=device, dtype=plan.torch_dtype)
            tasks = [t.to(device, plan.torch_dtype) for t in tasks64]
            autocast = Autocast(plan, device)
            with precision_flags(plan):
                with autocast():
                    got, stats = meta_gradient(learner, tasks)
                seconds, peak = timed_cost(learner, tasks, autocast, device, repeats, memory)
            if precision == "float64":
                ref64 = got
            assert ref64 is not None
            rounding = compare(got, ref64)
            vs_exact = compare(got, exact) if exact is not None else (float("nan"),) * 2
            rows.append(
                {
                    **row,
                    "status": "ok",
                    "autocast_dtype": autocast.seen,
                    "rel_error": vs_exact[0],
                    "cosine": vs_exact[1],
                    "rounding_error": rounding[0],
                    "rounding_cosine": rounding[1],
                    "grad_norm": float(_flat64(got).norm()),
                    "exact_norm": float(exact.norm()) if exact is not None else float("nan"),
                    "sec_per_meta_grad": seconds,
                    "peak_mem_mb": peak,
                    "lower_grad_norm": _maybe(stats.lower_grad_norm),
                    "cg_residual": _maybe(stats.cg_residual),
                }
            )
    return rows


def _maybe(x: Tensor | None) -> float | None:
    return None if x is None else float(x)


__all__ = ["ROUNDING_PRECISIONS", "compare", "plan_for", "rounding_sweep", "run_rounding"]
