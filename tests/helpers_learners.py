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

from memcomp.learners import Learner
from memcomp.types import Task

# the tiny world of memcomp verify (one definition for the tests and the command)
from memcomp.verify.fixtures import (  # noqa: E402, F401
    IN_SHAPE,
    QUERIES,
    SHOTS,
    WAYS,
    flat_grad,
    flat_params,
    make_learner,
    make_task,
    meta_named,
    run_meta_backward,
)


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
