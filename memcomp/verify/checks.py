"""The contract checks of ``memcomp verify``: each takes a :class:`Subject` (which learner, how
to build it) and returns a :class:`Check` (passed, failed, skipped, or a measured approximation
error). The tests run the same functions over every registered learner (docs/extending.md)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from memcomp.learners.base import Learner
from memcomp.verify.fixtures import (
    Factory,
    contract_params,
    flat_grad,
    flat_params,
    make_learner,
    make_tasks,
    run_meta_backward,
    set_flat,
)
from memcomp.verify.hostsync import HostReads

PERTURB = 0.2  # noise on every parameter: BatchNorm scales differ between channels
FD_EPS, FD_RTOL, FD_DIRECTIONS = 1e-6, 1e-6, 3
MODES_RTOL = 1e-10  # sequential vs batched vs chunked meta-gradients (float64)
LIMIT_RTOL = 1e-4  # an approximation at its limit_params vs the exact hypergradient
BAD_SCALE = 1e4


@dataclass
class Check:
    """One line of the verify table. ``status``: pass, FAIL, skip or approx (an approximate
    learner's measured error, never a failure); ``error``: the measured error, if any."""

    name: str
    status: str
    error: float | None = None
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass
class Subject:
    """The learner under test: a registered ``name``, optionally another ``factory`` (a class
    taking ``(backbone, ways, params)``) with that name's parameter model, and extra params."""

    name: str
    factory: Factory | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cls(self) -> Any:
        from memcomp.learners import LEARNERS

        return self.factory or LEARNERS.get(self.name).factory

    def build(self, seed: int = 0, **extra: Any) -> Learner:
        params = contract_params(self.name, self.factory, **{**self.extra, **extra})
        return make_learner(self.name, params, seed, factory=self.factory, perturb=PERTURB)


def _ok(name: str, good: bool, error: float | None = None, note: str = "") -> Check:
    return Check(name, "pass" if good else "FAIL", error, note)


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def check_meta_parameters(s: Subject) -> Check:
    """Finite scalar loss; ``.grad`` set exactly on ``meta_parameters()`` (a frozen parameter and
    the task images get none); finite, non-zero meta-gradient; ``meta_learns_head`` holds."""
    name = "meta-parameters get the gradient, nothing else"
    learner = s.build()
    frozen = next(p for p in learner.backbone.parameters() if p.requires_grad)
    frozen.requires_grad_(False)
    tasks = make_tasks()
    learner.zero_grad(set_to_none=True)
    stats = learner.meta_backward(tasks)
    meta = {id(p) for p in learner.meta_parameters()}
    problems = []
    if not (stats.loss.ndim == 0 and not stats.loss.requires_grad):
        problems.append("loss must be a detached scalar")
    if meta != {id(p) for p in learner.parameters() if p.requires_grad}:
        problems.append("meta_parameters() != the parameters requiring grad")
    wrong = [n for n, p in learner.named_parameters() if (p.grad is not None) != (id(p) in meta)]
    if wrong:
        problems.append(f"grad presence wrong on {', '.join(wrong[:3])}")
    if any(t.xs.grad is not None or t.xq.grad is not None for t in tasks):
        problems.append("task images got a .grad")
    if learner.head.weight.requires_grad != bool(getattr(learner, "meta_learns_head", True)):
        problems.append("meta_learns_head disagrees with head.requires_grad")
    if not problems:
        g = flat_grad(learner)
        if not (bool(torch.isfinite(stats.loss)) and bool(torch.isfinite(g).all())):
            problems.append("loss or meta-gradient not finite")
        elif float(g.norm()) == 0:
            problems.append("meta-gradient is zero")
    return _ok(name, not problems, note="; ".join(problems))


def check_deterministic(s: Subject) -> Check:
    """The same learner twice, and a second one built with the same seed: identical bits."""
    tasks = make_tasks()
    a, b = s.build(), s.build()
    g1, g2, g3 = (
        run_meta_backward(a, tasks),
        run_meta_backward(a, tasks),
        run_meta_backward(b, tasks),
    )
    err = max(float((g2 - g1).abs().max()), float((g3 - g1).abs().max()))
    return _ok("same seed, same result", err == 0, err)


def check_mean_and_accumulate(s: Subject) -> Check:
    """The meta-gradient of a meta-batch is the mean of the tasks' own; it adds into ``.grad``."""
    learner, tasks = s.build(), make_tasks()
    every = run_meta_backward(learner, tasks)
    single = sum(run_meta_backward(learner, [t]) for t in tasks) / len(tasks)
    err = _rel(every, single)
    run_meta_backward(learner, tasks)
    learner.meta_backward(tasks)
    acc = _rel(flat_grad(learner), 2 * every)
    good = err <= 1e-10 and acc <= 1e-10
    return _ok("mean over tasks, adds into .grad", good, max(err, acc))


def check_execution_modes(s: Subject) -> Check:
    """``execution: sequential``, ``batched`` and ``batched`` with ``task_chunk: 2`` give the
    same loss and meta-gradient (float64)."""
    name = "sequential == batched == chunked"
    learner = s.build()
    if "execution" not in type(learner.params).model_fields:
        return Check(name, "skip", note="one execution mode (no `execution` parameter)")
    tasks = make_tasks()
    results = []
    for update in ({"execution": "sequential"}, {"execution": "batched"}, {"task_chunk": 2}):
        other = copy.deepcopy(learner)
        other.params = learner.params.model_copy(update={"execution": "batched", **update})
        other.zero_grad(set_to_none=True)
        stats = other.meta_backward(tasks)
        results.append((stats.loss, flat_grad(other).clone()))
    (loss0, g0), *others = results
    err = max(max(_rel(g, g0), float((loss - loss0).abs() / loss0.abs())) for loss, g in others)
    return _ok(name, err <= MODES_RTOL, err)


def directional_error(learner: Learner, tasks: list[Any], grad: Tensor) -> tuple[float, float]:
    """``max_d |grad @ d - fd_d| / max_d |fd_d|`` over random unit directions ``d``, with
    ``fd_d`` the central finite difference of ``learner.meta_objective(tasks)`` along ``d`` (an
    estimate of ``||error|| / ||gradient||``); and the smallest ``|fd_d|`` (a direction along
    which nothing changes tests nothing)."""
    theta = flat_params(learner)
    gen = torch.Generator().manual_seed(0)

    def objective(flat: Tensor) -> float:
        set_flat(learner, flat)
        learner.zero_grad(set_to_none=True)
        return float(learner.meta_objective(tasks))

    diffs, fds = [], []
    try:
        for _ in range(FD_DIRECTIONS):
            d = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
            d /= d.norm()
            fd = (objective(theta + FD_EPS * d) - objective(theta - FD_EPS * d)) / (2 * FD_EPS)
            fds.append(abs(fd))
            diffs.append(abs(fd - float(grad @ d)))
    finally:
        set_flat(learner, theta)
    return max(diffs) / max(max(fds), 1e-300), min(fds)


def check_finite_differences(s: Subject) -> Check:
    """Exact learners: the meta-gradient equals central finite differences of the meta objective
    (relative error <= 1e-6). Approximate learners: the error is measured and reported."""
    learner, tasks = s.build(), make_tasks()
    grad = run_meta_backward(learner, tasks)
    err, smallest = directional_error(learner, tasks, grad)
    if smallest < 1e-3:
        note = f"directional derivative {smallest:.1e}: the objective barely moves"
        return Check("meta-gradient vs finite differences", "FAIL", err, note)
    if getattr(s.cls, "exact", False):
        return _ok("meta-gradient vs finite differences", err <= FD_RTOL, err, "exact learner")
    note = "approximate learner at test_params: reported, not a failure"
    return Check("error vs exact hypergradient", "approx", err, note)


def check_limit(s: Subject) -> Check:
    """Approximate learners declaring ``limit_params`` (where the approximation has converged,
    e.g. many inner and CG steps): there the error against the exact hypergradient is small."""
    name = "converges to exact hypergradient"
    limit = getattr(s.cls, "limit_params", None)
    if getattr(s.cls, "exact", False):
        return Check(name, "skip", note="exact learner")
    if not limit:
        return Check(name, "skip", note="no limit_params (an approximation with no limit)")
    learner, tasks = s.build(**limit), make_tasks()
    grad = run_meta_backward(learner, tasks)
    err, _ = directional_error(learner, tasks, grad)
    note = ", ".join(f"{k}={v}" for k, v in limit.items())
    return _ok(name, err <= LIMIT_RTOL, err, note)


def check_bad_scaling(s: Subject) -> Check:
    """A task whose images are scaled by 1e4: loss and meta-gradient stay finite."""
    learner, tasks = s.build(), make_tasks(scale=BAD_SCALE)
    learner.zero_grad(set_to_none=True)
    stats = learner.meta_backward(tasks)
    good = bool(torch.isfinite(stats.loss)) and bool(torch.isfinite(flat_grad(learner)).all())
    return _ok(f"no NaN on a badly scaled task (x{BAD_SCALE:g})", good)


def check_host_sync(s: Subject) -> Check:
    """Learners declaring ``host_sync_free``: no device value is read back inside the inner loop
    (phase ``inner``) of a meta-step at ``test_params``."""
    name = "no host sync in the inner loop"
    if not getattr(s.cls, "host_sync_free", False):
        return Check(name, "skip", note="the learner does not declare host_sync_free")
    learner, tasks = s.build(), make_tasks()
    learner.zero_grad(set_to_none=True)
    with HostReads().watching_phases() as reads:
        learner.meta_backward(tasks)
    inner = reads.by_phase["inner"]
    return _ok(name, inner == 0, float(inner), f"host reads: {dict(reads.by_phase) or 0}")


CHECKS: list[Callable[[Subject], Check]] = [
    check_meta_parameters,
    check_deterministic,
    check_mean_and_accumulate,
    check_execution_modes,
    check_finite_differences,
    check_limit,
    check_bad_scaling,
    check_host_sync,
]
