"""Shared helpers for the learner numerics tests: tiny models, random tasks, references.

The reference functions work on one flat parameter vector and compute logits as
``linear(backbone(x))`` directly, independently of the learners' own code paths.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from memcomp.backbones import build_backbone
from memcomp.learners import Learner, build_learner
from memcomp.types import Task

WAYS, SHOTS, QUERIES = 3, 2, 2
IN_SHAPE = (1, 8, 8)


def make_learner(
    name: str, params: dict | None = None, seed: int = 0, dtype: torch.dtype = torch.float64
) -> Learner:
    """A learner around a tiny Conv4 (3 filters, 2 blocks, BatchNorm kept) with a 3-way head."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_backbone("conv4", {"hidden": 3, "blocks": 2}, IN_SHAPE)
        learner = build_learner(name, params or {}, backbone, WAYS)
    return learner.to(dtype)


def make_task(seed: int, dtype: torch.dtype = torch.float64) -> Task:
    """A random 3-way 2-shot task with 2 queries per class; images carry a class signal."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(WAYS, *IN_SHAPE, generator=g, dtype=dtype)

    def draw(per_class: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(WAYS).repeat_interleave(per_class)
        x = protos[y] + 0.8 * torch.randn(len(y), *IN_SHAPE, generator=g, dtype=dtype)
        return x, y

    xs, ys = draw(SHOTS)
    xq, yq = draw(QUERIES)
    return Task(xs, ys, xq, yq)


def meta_named(learner: Learner) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in learner.named_parameters() if p.requires_grad]


def flat_params(learner: Learner) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for _, p in meta_named(learner)])


def flat_grad(learner: Learner) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for _, p in meta_named(learner)])


def split_flat(learner: Learner, flat: Tensor) -> dict[str, Tensor]:
    named = meta_named(learner)
    parts = torch.split(flat, [p.numel() for _, p in named])
    return {n: part.view_as(p) for (n, p), part in zip(named, parts, strict=True)}


def ref_logits(learner: Learner, flat: Tensor, x: Tensor) -> Tensor:
    """Logits ``head(backbone(x))`` at the flat parameter vector ``flat``."""
    d = split_flat(learner, flat)
    bb = {k.removeprefix("backbone."): v for k, v in d.items() if k.startswith("backbone.")}
    feats = functional_call(learner.backbone, bb, (x,))
    return F.linear(feats, d["head.weight"], d["head.bias"])


def ref_support_loss(learner: Learner, flat: Tensor, task: Task) -> Tensor:
    return F.cross_entropy(ref_logits(learner, flat, task.xs), task.ys)


def ref_query_loss(learner: Learner, flat: Tensor, task: Task) -> Tensor:
    return F.cross_entropy(ref_logits(learner, flat, task.xq), task.yq)


def _grad(fn, flat: Tensor) -> Tensor:
    v = flat.detach().requires_grad_()
    (g,) = torch.autograd.grad(fn(v), v)
    return g


def ref_sgd(learner: Learner, flat: Tensor, task: Task, steps: int, lr: float) -> Tensor:
    """``steps`` plain SGD steps on the support loss (values only, no graph)."""
    for _ in range(steps):
        flat = flat.detach() - lr * _grad(lambda v: ref_support_loss(learner, v, task), flat)
    return flat


def ref_prox(
    learner: Learner, theta: Tensor, task: Task, steps: int, lr: float, lam: float
) -> Tensor:
    """``steps`` GD steps on support loss + (lam/2)||phi - theta||^2 from theta."""
    phi = theta.detach()
    for _ in range(steps):
        g = _grad(lambda v: ref_support_loss(learner, v, task), phi)
        phi = phi - lr * (g + lam * (phi - theta))
    return phi


def ref_grad_at(learner: Learner, flat: Tensor, task: Task) -> Tensor:
    """Gradient of the query loss at ``flat``."""
    return _grad(lambda v: ref_query_loss(learner, v, task), flat)


def support_hessian(learner: Learner, flat: Tensor, task: Task) -> Tensor:
    """Explicit Hessian of the support loss at ``flat``."""
    return torch.autograd.functional.hessian(
        lambda v: ref_support_loss(learner, v, task), flat.detach()
    )


def run_meta_backward(learner: Learner, tasks: list[Task]) -> Tensor:
    """Zero grads, run ``meta_backward``, return the flat meta-gradient."""
    learner.zero_grad(set_to_none=True)
    learner.meta_backward(tasks)
    return flat_grad(learner).clone()


def assert_matches_central_fd(
    grad: Tensor,
    theta: Tensor,
    objective: Callable[[Tensor], Tensor],
    directions: int = 3,
    eps: float = 1e-6,
    rtol: float = 1e-6,
) -> None:
    """``grad @ d`` equals the central difference of ``objective`` at ``theta`` along random unit
    directions ``d`` (each directional derivative must be far from 0 to test something)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(directions):
        d = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
        d /= d.norm()
        fd = (objective(theta + eps * d) - objective(theta - eps * d)) / (2 * eps)
        exact = grad @ d
        assert abs(exact) > 1e-3  # a direction that actually tests something
        assert abs(fd - exact) <= rtol * abs(exact), (fd.item(), exact.item())
