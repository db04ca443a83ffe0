"""Forward-over-reverse Hessian-vector products equal the reverse-mode ones (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers_head import meta_grads, one_thread, tiny_learner, tiny_tasks  # noqa: F401
from torch.func import functional_call

from memcomp.learners.batching import vmapped_losses
from memcomp.numerics import head
from memcomp.numerics.forward_hvp import forward_hvp, head_forward_hvp


def reverse_hvp(loss_fn, phi, vs):
    leaves = [p.detach().requires_grad_() for p in phi]
    grads = torch.autograd.grad(loss_fn(leaves), leaves, create_graph=True)
    return torch.autograd.grad(grads, leaves, grad_outputs=vs)


def test_forward_hvp_equals_reverse_through_batchnorm() -> None:
    learner = tiny_learner("imaml", {})
    task = tiny_tasks(1)[0]
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    phi = [p.detach() for n, p in learner.named_parameters() if p.requires_grad]

    def loss_fn(ps):
        logits = functional_call(learner, dict(zip(names, ps, strict=True)), (task.xs,))
        return F.cross_entropy(logits, task.ys)

    gen = torch.Generator().manual_seed(0)
    vs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in phi]
    fwd = forward_hvp(loss_fn, phi)(vs)
    rev = reverse_hvp(loss_fn, phi, vs)
    assert max(float(r.abs().max()) for r in rev) > 1e-3
    for a, b in zip(fwd, rev, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_forward_hvp_equals_reverse_batched_vmap() -> None:
    learner = tiny_learner("imaml", {})
    tasks = tiny_tasks(3)
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(1)
    phi = [
        p.detach().unsqueeze(0).expand(3, *p.shape)
        + 0.01 * torch.randn(3, *p.shape, generator=gen, dtype=p.dtype)
        for n, p in learner.named_parameters()
        if p.requires_grad
    ]
    xs, ys = torch.stack([t.xs for t in tasks]), torch.stack([t.ys for t in tasks])

    def loss_fn(ps):
        return vmapped_losses(learner, dict(zip(names, ps, strict=True)), xs, ys).sum()

    vs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in phi]
    fwd = forward_hvp(loss_fn, phi)(vs)
    rev = reverse_hvp(loss_fn, phi, vs)
    for a, b in zip(fwd, rev, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_head_forward_hvp_equals_closed_form() -> None:
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(4, 6, 5, generator=gen, dtype=torch.float64)
    w, b = torch.randn(4, 3, 5, generator=gen, dtype=torch.float64), torch.zeros(4, 3).double()
    uw, ub = torch.randn_like(w), torch.randn_like(b)
    got = head_forward_hvp(z, w, b, uw, ub, l2=0.3)
    ref = head.hvp(z, w, b, uw, ub, l2=0.3)
    for a, r in zip(got, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("execution", ["sequential", "batched"])
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("imaml", {"inner_steps": 3, "lam": 4.0, "cg_steps": 4}),
        ("mrml", {"inner_steps": 5, "cg_steps": 6, "l2": 0.05}),
    ],
)
def test_hvp_forward_equals_reverse_in_the_learners(name, params, execution) -> None:
    tasks = tiny_tasks(3, seed=5)
    grads, stats = {}, {}
    for mode in ("reverse", "forward"):
        learner = tiny_learner(name, {**params, "execution": execution, "hvp": mode})
        grads[mode] = meta_grads(learner, tasks)
        stats[mode] = learner.meta_backward(tasks)
    assert max(float(g.abs().max()) for g in grads["reverse"]) > 1e-4
    for a, b in zip(grads["forward"], grads["reverse"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(
        stats["forward"].cg_residual, stats["reverse"].cg_residual, rtol=1e-7, atol=1e-14
    )
