"""Shared helpers for the head-adapting learners' tests: tiny model, tiny tasks, references.

References here use only ``torch.nn.functional`` and ``torch.autograd`` (never
``memcomp.numerics.head``), so they check the closed forms independently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from memcomp.backbones import build_backbone
from memcomp.learners import Learner, build_learner
from memcomp.types import Task

WAYS, SHOTS, QUERIES = 3, 2, 2
IN_SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True, name="head_tests_one_thread")
def one_thread() -> Iterator[None]:
    """Tiny ops run far faster on one thread (and do not fight a busy 2-core machine).

    Import it into a test module to make it apply there.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_learner(name: str, params: dict, seed: int = 0, ways: int = WAYS) -> Learner:
    """Float64 learner on a 2-block, 3-filter Conv4 (feat_dim 12), BatchNorm kept."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_backbone("conv4", {"hidden": 3, "blocks": 2}, IN_SHAPE)
        return build_learner(name, params, backbone, ways).double()


def tiny_tasks(
    n: int,
    seed: int = 1,
    ways: int = WAYS,
    shots: int = SHOTS,
    queries: int = QUERIES,
    dtype: torch.dtype = torch.float64,
) -> list[Task]:
    """``n`` random tasks; the class index shifts the image mean so classes differ a little."""
    gen = torch.Generator().manual_seed(seed)

    def images(k: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(ways).repeat_interleave(k)
        x = torch.randn(ways * k, *IN_SHAPE, generator=gen, dtype=torch.float64)
        return (x + 0.5 * y.view(-1, 1, 1, 1)).to(dtype), y

    out = []
    for _ in range(n):
        xs, ys = images(shots)
        xq, yq = images(queries)
        out.append(Task(xs, ys, xq, yq))
    return out


def reg_ce(z: Tensor, y: Tensor, w: Tensor, b: Tensor, l2: float) -> Tensor:
    """Mean CE of ``z W^T + b`` plus ``(l2/2)||(W, b)||^2`` via torch.nn.functional."""
    return F.cross_entropy(F.linear(z, w, b), y) + 0.5 * l2 * (w.square().sum() + b.square().sum())


def autograd_gd(
    z: Tensor, y: Tensor, w: Tensor, b: Tensor, steps: int, lr: float, l2: float
) -> tuple[Tensor, Tensor]:
    """Gradient descent on :func:`reg_ce` with gradients from torch.autograd (no graph kept)."""
    w, b = w.detach().clone(), b.detach().clone()
    z = z.detach()
    with torch.enable_grad():
        for _ in range(steps):
            w.requires_grad_(True)
            b.requires_grad_(True)
            gw, gb = torch.autograd.grad(reg_ce(z, y, w, b, l2), (w, b))
            w, b = (w - lr * gw).detach(), (b - lr * gb).detach()
    return w, b


def meta_grads(learner: Learner, tasks: Sequence[Task]) -> list[Tensor]:
    """Run ``meta_backward`` from zero gradients; return the gradients of meta_parameters."""
    params = learner.meta_parameters()
    for p in params:
        p.grad = None
    learner.meta_backward(tasks)
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def check_directional(
    fn: Callable[[], float],
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    n_dirs: int = 3,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Compare <grad, d> with central finite differences of ``fn`` along random unit ``d``.

    ReLU and max-pool kinks are a distance ~1e-4 away along some directions in the tiny Conv4, so
    ``eps`` stays small (a unit direction, step 1e-6: truncation ~1e-12, rounding ~1e-10).
    ``params`` are perturbed in place (and restored). Returns the (analytic, numeric) pairs and
    asserts ``|numeric - analytic| <= rtol * |analytic|`` for each.
    """
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n_dirs):
        dirs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        norm = torch.cat([d.flatten() for d in dirs]).norm()
        dirs = [d / norm for d in dirs]
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs, strict=True))
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, d in zip(params, dirs, strict=True):
                    p.add_(sign * eps * d)
            values.append(fn())
            with torch.no_grad():
                for p, d in zip(params, dirs, strict=True):
                    p.sub_(sign * eps * d)
        numeric = (values[0] - values[1]) / (2 * eps)
        pairs.append((analytic, numeric))
        assert abs(analytic) > 1e-8, "degenerate direction"
        assert abs(numeric - analytic) <= rtol * abs(analytic), (analytic, numeric)
    return pairs


class ForwardCounter:
    """Counts backbone forward calls made with autograd recording (graph-building forwards)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.with_graph = 0
        self.without_graph = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_: object) -> None:
        if torch.is_grad_enabled():
            self.with_graph += 1
        else:
            self.without_graph += 1

    def remove(self) -> None:
        self.handle.remove()
