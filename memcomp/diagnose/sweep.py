"""Hypergradient diagnostics: every learner's meta-gradient against the exact hypergradient.

On ONE set of weights (a small Conv4 and a fixed head init, float64) and ONE set of random
tasks, each learner configuration of a sweep computes its meta-gradient; it is compared with the
exact hypergradient of the bilevel problem it approximates (:mod:`memcomp.diagnose.exact`):
relative error ``||g - g*|| / ||g*||`` and cosine similarity, beside the cost of one meta-gradient
(median seconds over ``repeats`` calls, CPU-estimate peak memory) and the convergence figures the
learner reports (``lower_grad_norm``, ``cg_residual``).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from memcomp.backbones import build_backbone
from memcomp.diagnose.exact import head_hypergrad, proximal_hypergrad
from memcomp.learners import Learner, build_learner
from memcomp.measure.memory import MemoryMeter
from memcomp.measure.phases import active_meter
from memcomp.numerics.flat import flatten
from memcomp.types import Task

Reference = Callable[[Learner, Sequence[Task]], Tensor]


@dataclass(frozen=True)
class Problem:
    """A model and task shape small enough for exact hypergradients."""

    ways: int = 5
    shots: int = 5
    queries: int = 5
    image: tuple[int, int, int] = (1, 8, 8)
    hidden: int = 4
    blocks: int = 2
    tasks: int = 4
    seed: int = 0
    l2: float = 0.1  # the head-level lower level's L2 (every head learner uses this)
    lam: float = 2.0  # iMAML's proximal strength


@dataclass(frozen=True)
class Config:
    """One learner configuration of the sweep: name, parameters, which knob the sweep varies."""

    learner: str
    params: dict[str, Any] = field(default_factory=dict)
    varies: str = ""


def default_sweep(p: Problem) -> list[Config]:
    """K, N and lambda sweeps of every learner with an exact reference."""
    # lr 0.3: K = 1000 head steps reach ||dg/dphi|| ~ 5e-15 on the default problem
    head = {"l2": p.l2, "inner_lr": 0.3, "execution": "sequential"}
    out = [Config("fomaml", {"inner_steps": k, "inner_lr": 0.1}, "K") for k in (1, 3, 10)]
    out += [Config("maml-recompute", {"inner_steps": k, "inner_lr": 0.1}, "K") for k in (3, 10)]
    out += [
        Config("itd-bio", {**head, "inner_steps": k, "features": "once"}, "K")
        for k in (5, 20, 100, 1000)
    ]
    out += [
        Config("mrml", {**head, "inner_steps": k, "cg_steps": 20}, "K") for k in (5, 20, 100, 1000)
    ]
    out += [
        Config("mrml", {**head, "inner_steps": 1000, "cg_steps": n}, "N") for n in (1, 2, 5, 10)
    ]
    out += [Config("sama", {**head, "inner_steps": k}, "K") for k in (5, 20, 100, 1000)]
    out += [
        Config("f2sa", {**head, "inner_steps": 1000, "lam": lam}, "lambda")
        for lam in (1.0, 10.0, 100.0, 1000.0)
    ]
    prox = {"lam": p.lam, "inner_steps": 100, "inner_lr": 0.05, "execution": "sequential"}
    out += [Config("imaml", {**prox, "cg_steps": n}, "N") for n in (1, 2, 5, 10, 20)]
    out += [Config("imaml", {**prox, "cg_steps": 20, "hvp": "forward"}, "hvp=forward")]
    out += [
        Config(
            "mrml", {**head, "inner_steps": 1000, "cg_steps": 20, "hvp": "forward"}, "hvp=forward"
        )
    ]
    return out


def make_tasks(p: Problem) -> list[Task]:
    """Random tasks whose class index shifts the image mean (so classes differ)."""
    gen = torch.Generator().manual_seed(p.seed + 1)

    def draw(k: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(p.ways).repeat_interleave(k)
        x = torch.randn(len(y), *p.image, generator=gen, dtype=torch.float64)
        return x + 0.5 * y.view(-1, 1, 1, 1).double(), y

    return [Task(*draw(p.shots), *draw(p.queries)) for _ in range(p.tasks)]


class SharedWeights:
    """Builds every learner around copies of ONE backbone and ONE head initialisation."""

    def __init__(self, p: Problem) -> None:
        self.problem = p
        with torch.random.fork_rng():
            torch.manual_seed(p.seed)
            backbone = build_backbone("conv4", {"hidden": p.hidden, "blocks": p.blocks}, p.image)
            self.backbone = backbone.double()
            self.head = torch.nn.Linear(int(backbone.feat_dim), p.ways).double()

    def learner(self, name: str, params: dict[str, Any]) -> Learner:
        learner = build_learner(name, params, copy.deepcopy(self.backbone), self.problem.ways)
        learner = learner.double()
        with torch.no_grad():
            learner.head.weight.copy_(self.head.weight)
            learner.head.bias.copy_(self.head.bias)
        return learner


def meta_gradient(learner: Learner, tasks: Sequence[Task]) -> tuple[Tensor, Any]:
    """Flat meta-gradient (``meta_parameters`` order) and the learner's StepStats."""
    params = learner.meta_parameters()
    for q in params:
        q.grad = None
    stats = learner.meta_backward(tasks)
    grads = [torch.zeros_like(q) if q.grad is None else q.grad for q in params]
    return flatten(grads).clone(), stats


def cost(
    learner: Learner, tasks: Sequence[Task], repeats: int, memory: bool = True
) -> tuple[float, float | None]:
    """Median seconds of one meta-gradient and (``memory``) its CPU-estimate peak (MB)."""
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        meta_gradient(learner, tasks)
        seconds.append(time.perf_counter() - t0)
    if not memory:
        return statistics.median(seconds), None
    meter = MemoryMeter("cpu", resident=[learner, list(tasks)])
    with active_meter(meter.phase), meter.measure():
        meta_gradient(learner, tasks)
    return statistics.median(seconds), meter.result().peak_mb


def reference_for(config: Config, weights: SharedWeights) -> tuple[str, Reference]:
    """(problem label, exact hypergradient function) for a learner configuration."""
    p = weights.problem
    name = config.learner
    if name in ("mrml", "f2sa", "sama", "itd-bio"):
        return f"head l2={p.l2}", lambda lrn, tasks: head_hypergrad(lrn, tasks, p.l2)
    if name == "imaml":
        q = weights.learner(name, config.params).params
        return (
            f"proximal lam={q.lam} at phi_K={q.inner_steps}",
            lambda lrn, tasks: proximal_hypergrad(lrn, tasks, q.lam, q.inner_steps, q.inner_lr),
        )
    if name in ("maml", "fomaml", "maml-recompute"):
        maml_params = {k: v for k, v in config.params.items() if k != "segment"}

        def unrolled(_: Learner, tasks: Sequence[Task]) -> Tensor:
            return meta_gradient(weights.learner("maml", maml_params), tasks)[0]

        return f"unrolled K={config.params.get('inner_steps', 5)}", unrolled
    raise ValueError(f"no exact hypergradient known for learner {name!r}")


def run_sweep(
    configs: Sequence[Config],
    problem: Problem | None = None,
    repeats: int = 3,
    memory: bool = True,
) -> list[dict[str, Any]]:
    """One row per configuration: error, cosine and cost against the exact hypergradient
    (``memory=False`` skips the CPU-estimate peak, which slows long inner loops down)."""
    p = problem or Problem()
    weights, tasks = SharedWeights(p), make_tasks(p)
    cache: dict[str, Tensor] = {}
    rows = []
    for config in configs:
        learner = weights.learner(config.learner, config.params)
        label, reference = reference_for(config, weights)
        if label.startswith("unrolled") or label not in cache:  # unrolled: depends on lr too
            cache[label] = reference(learner, tasks)
        exact = cache[label]
        got, stats = meta_gradient(learner, tasks)
        seconds, peak = cost(learner, tasks, repeats, memory)
        rows.append(
            {
                "learner": config.learner,
                "problem": label,
                "varies": config.varies,
                **{f"learner.{k}": v for k, v in learner.params.model_dump().items()},
                "rel_error": float((got - exact).norm() / exact.norm()),
                "cosine": float(torch.nn.functional.cosine_similarity(got, exact, 0)),
                "exact_norm": float(exact.norm()),
                "sec_per_meta_grad": seconds,
                "peak_mem_mb": peak,
                "lower_grad_norm": maybe_float(stats.lower_grad_norm),
                "cg_residual": maybe_float(stats.cg_residual),
            }
        )
    return rows


def maybe_float(x: Tensor | None) -> float | None:
    return None if x is None else float(x)
