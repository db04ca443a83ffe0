"""The tiny, deterministic world ``memcomp verify`` checks a learner in: a float64 Conv4 (3
filters, 2 blocks, per-task BatchNorm) with a 3-way head on 8x8 one-channel images, random tasks
carrying a class signal, and flat views of the meta-parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from memcomp.backbones import build_backbone
from memcomp.learners import LEARNERS
from memcomp.learners.base import Learner
from memcomp.numerics.flat import flatten
from memcomp.types import Task

WAYS, SHOTS, QUERIES = 3, 2, 2
IN_SHAPE = (1, 8, 8)
BACKBONE = {"hidden": 3, "blocks": 2}
Factory = Callable[..., Learner]


def make_learner(
    name: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    factory: Factory | None = None,
    perturb: float = 0.0,
) -> Learner:
    """Learner ``name`` (or ``factory`` with ``name``'s parameter model) around the tiny Conv4;
    ``perturb`` adds seeded noise of that size to every parameter (so that, e.g., BatchNorm
    scales differ between channels)."""
    entry = LEARNERS.get(name)
    build = factory or entry.factory
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_backbone("conv4", BACKBONE, IN_SHAPE)
        learner = build(backbone, WAYS, entry.params(**(params or {})))
        learner = learner.to(dtype)
        if perturb:
            with torch.no_grad():
                for p in learner.parameters():
                    p.add_(perturb * torch.randn_like(p))
    return learner


def contract_params(name: str, factory: Factory | None = None, **extra: Any) -> dict[str, Any]:
    """The learner class's ``test_params`` (tiny hyper-parameters) updated by ``extra``."""
    cls = factory or LEARNERS.get(name).factory
    return {**getattr(cls, "test_params", {}), **extra}


def make_task(seed: int, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> Task:
    """A random 3-way 2-shot task with 2 queries per class; images carry a class signal
    (``scale`` multiplies the images: a badly scaled task)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(WAYS, *IN_SHAPE, generator=g, dtype=dtype)

    def draw(per_class: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(WAYS).repeat_interleave(per_class)
        x = protos[y] + 0.8 * torch.randn(len(y), *IN_SHAPE, generator=g, dtype=dtype)
        return x * scale, y

    xs, ys = draw(SHOTS)
    xq, yq = draw(QUERIES)
    return Task(xs, ys, xq, yq)


def make_tasks(seeds: tuple[int, ...] = (11, 12, 13), **kw: Any) -> list[Task]:
    return [make_task(s, **kw) for s in seeds]


def meta_named(learner: Learner) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in learner.named_parameters() if p.requires_grad]


def flat_params(learner: Learner) -> Tensor:
    return flatten([p.detach() for _, p in meta_named(learner)])


def flat_grad(learner: Learner) -> Tensor:
    return flatten([p.grad for _, p in meta_named(learner)])


def set_flat(learner: Learner, flat: Tensor) -> None:
    """Copy the flat vector ``flat`` into the meta-parameters."""
    with torch.no_grad():
        params = [p for _, p in meta_named(learner)]
        for p, v in zip(params, torch.split(flat, [p.numel() for p in params]), strict=True):
            p.copy_(v.view_as(p))


def run_meta_backward(learner: Learner, tasks: list[Task]) -> Tensor:
    """Zero grads, run ``meta_backward``, return the flat meta-gradient."""
    learner.zero_grad(set_to_none=True)
    learner.meta_backward(tasks)
    return flat_grad(learner).clone()
