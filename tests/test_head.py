"""Closed-form linear softmax head vs torch.autograd, float64, batched and unbatched."""

from __future__ import annotations

import pytest
import torch
from helpers_head import (
    autograd_gd,
    one_thread,  # noqa: F401
    reg_ce,
)

from memcomp.numerics import head

TOL = 1e-12


def problem(batch: int | None, n: int = 7, d: int = 5, ways: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*lead, *shape, generator=gen, dtype=torch.float64)

    y = torch.randint(0, ways, (*lead, n), generator=gen)
    return rnd(n, d), y, rnd(ways, d), rnd(ways), rnd(ways, d), rnd(ways)


def per_task(batch: int | None):
    """One selector per task (unbatched: the identity)."""
    if batch is None:
        return [lambda t: t]
    return [lambda t, i=i: t[i] for i in range(batch)]


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_loss_grad_hvp_match_autograd(batch: int | None, l2: float) -> None:
    z, y, w, b, uw, ub = problem(batch)
    loss = head.loss(z, y, w, b, l2)
    gw, gb = head.grad(z, y, w, b, l2)
    hw, hb = head.hvp(z, w, b, uw, ub, l2)
    assert loss.shape == (() if batch is None else (batch,))
    for k, sel in enumerate(per_task(batch)):
        wk = sel(w).clone().requires_grad_(True)
        bk = sel(b).clone().requires_grad_(True)
        ref = reg_ce(sel(z), sel(y), wk, bk, l2)
        rgw, rgb = torch.autograd.grad(ref, (wk, bk), create_graph=True)
        rhw, rhb = torch.autograd.grad((rgw * sel(uw)).sum() + (rgb * sel(ub)).sum(), (wk, bk))
        assert torch.allclose(sel(loss), ref.detach(), rtol=0, atol=TOL), k
        torch.testing.assert_close(sel(gw), rgw.detach(), rtol=0, atol=TOL)
        torch.testing.assert_close(sel(gb), rgb.detach(), rtol=0, atol=TOL)
        torch.testing.assert_close(sel(hw), rhw, rtol=0, atol=TOL)
        torch.testing.assert_close(sel(hb), rhb, rtol=0, atol=TOL)


def test_hvp_with_cached_probs_and_symmetry() -> None:
    z, y, w, b, uw, ub = problem(2)
    p = head.probs(z, w, b)
    for a, c in zip(
        head.hvp(z, w, b, uw, ub, 0.1), head.hvp(z, w, b, uw, ub, 0.1, p=p), strict=True
    ):
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    # <u, H v> == <v, H u> per task, and H is positive semi-definite
    _, _, _, _, vw, vb = problem(2, seed=5)
    huw, hub = head.hvp(z, w, b, uw, ub)
    hvw, hvb = head.hvp(z, w, b, vw, vb)
    uhv = (uw * hvw).sum((-1, -2)) + (ub * hvb).sum(-1)
    vhu = (vw * huw).sum((-1, -2)) + (vb * hub).sum(-1)
    torch.testing.assert_close(uhv, vhu, rtol=0, atol=TOL)
    assert ((uw * huw).sum((-1, -2)) + (ub * hub).sum(-1) >= 0).all()


def test_grad_is_differentiable_in_features() -> None:
    """d/dz <grad(z), R> from the closed form equals the autograd mixed second derivative."""
    z, y, w, b, rw, rb = problem(None)
    z1 = z.clone().requires_grad_(True)
    gw, gb = head.grad(z1, y, w, b)
    (dz,) = torch.autograd.grad((gw * rw).sum() + (gb * rb).sum(), z1)
    z2 = z.clone().requires_grad_(True)
    wk, bk = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    rgw, rgb = torch.autograd.grad(reg_ce(z2, y, wk, bk, 0.0), (wk, bk), create_graph=True)
    (ref,) = torch.autograd.grad((rgw * rw).sum() + (rgb * rb).sum(), z2)
    torch.testing.assert_close(dz, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("batch", [None, 2])
def test_gd_matches_autograd_descent_and_keeps_no_graph(batch: int | None) -> None:
    z, y, w, b, _, _ = problem(batch)
    w.requires_grad_(True)
    gw, gb = head.gd(z, y, w, b, steps=6, lr=0.3, l2=0.05)
    assert not gw.requires_grad and not gb.requires_grad
    assert not torch.equal(gw, w.detach())
    for sel in per_task(batch):
        rw, rb = autograd_gd(sel(z), sel(y), sel(w), sel(b), 6, 0.3, 0.05)
        torch.testing.assert_close(sel(gw), rw, rtol=0, atol=TOL)
        torch.testing.assert_close(sel(gb), rb, rtol=0, atol=TOL)
    # the graph-keeping variant takes the same steps
    ww, bb = head.gd_graph(z, y, w, b, steps=6, lr=0.3, l2=0.05)
    assert ww.requires_grad
    torch.testing.assert_close(ww.detach(), gw, rtol=0, atol=TOL)
    torch.testing.assert_close(bb.detach(), gb, rtol=0, atol=TOL)


def test_gd_decreases_the_regularised_loss() -> None:
    z, y, w, b, _, _ = problem(4)
    w1, b1 = head.gd(z, y, w, b, steps=50, lr=0.2, l2=0.1)
    assert (head.loss(z, y, w1, b1, 0.1) < head.loss(z, y, w, b, 0.1)).all()


def test_flatten_roundtrip() -> None:
    _, _, w, b, _, _ = problem(3)
    v = head.flatten(w, b)
    assert v.shape == (3, 4 * 6)
    w2, b2 = head.unflatten(v, 4)
    assert torch.equal(w2, w) and torch.equal(b2, b)
    # the flat inner product is the sum of the parts' inner products
    torch.testing.assert_close((v * v).sum(-1), head.sq_norm(w, b), rtol=0, atol=TOL)


def test_float32_runs() -> None:
    z, y, w, b, uw, ub = (t.float() if t.is_floating_point() else t for t in problem(2))
    assert head.grad(z, y, w, b, 0.1)[0].dtype == torch.float32
    assert head.hvp(z, w, b, uw, ub, 0.1)[1].dtype == torch.float32


def test_one_hot_targets_accepted() -> None:
    z, y, w, b, _, _ = problem(2)
    y1 = head.onehot(y, 4, z)
    assert y1.dtype == torch.float64 and torch.equal(y1.argmax(-1), y)
    assert torch.equal(head.loss(z, y1, w, b, 0.1), head.loss(z, y, w, b, 0.1))
    for a, c in zip(head.grad(z, y1, w, b), head.grad(z, y, w, b), strict=True):
        assert torch.equal(a, c)
