"""SAMA (Choe et al. NeurIPS 2023): implicit hypergradient with a finite-difference mixed term.

Same head-level bilevel problem as Algorithm 1 (``mrml``): ``g = support CE + (l2/2)||phi||^2``
over the head from a fixed init, ``f = query CE``, backbone ``theta``; ``phi_K`` after K gradient
steps on detached features. The exact implicit hypergradient is
``df/dtheta - (d2g/dtheta dphi) H^{-1} df/dphi``. SAMA replaces the inverse base Jacobian
``H^{-1}`` by ``alpha * I`` (for an SGD base optimiser, SAMA's optimiser-aware preconditioner is
the identity), so ``v = alpha * df/dphi``, and computes the mixed second-order term by a central
finite difference of FIRST-order gradients:

``(d2g/dtheta dphi) v ~ (dg/dtheta(phi_K + eps v) - dg/dtheta(phi_K - eps v)) / (2 eps)``,
``eps = fd_radius / ||v||`` (as SAMA's reference code).

Both gradients come from ONE backward of ``f(theta, phi_K) - (g(theta, phi_K + eps v) -
g(theta, phi_K - eps v)) / (2 eps)`` through one backbone graph: first-order memory, flat in K, no
Hessian-vector product. It is an approximation: exact only when ``H = I / alpha`` (the error
against the exact hypergradient is measured in the tests and by ``memcomp.diagnose``).
"""

from __future__ import annotations

from torch import Tensor

from memcomp.learners.family_params import SamaParams
from memcomp.learners.head_bilevel import HeadBilevel, Solution
from memcomp.numerics import head


class Sama(HeadBilevel):
    """Finite-difference implicit learner on the head-only lower level."""

    test_params = {"inner_steps": 5, "inner_lr": 0.5, "l2": 0.1}
    host_sync_free = True  # checked by memcomp verify
    params: SamaParams

    def solve(self, zs: Tensor, ys: Tensor, zq: Tensor, yq: Tensor) -> Solution:
        p = self.params
        w, b, norm = self.lower_gd(zs, ys)
        fw, fb = head.grad(zq, yq, w, b)
        vw, vb = p.alpha * fw, p.alpha * fb
        vnorm = head.sq_norm(vw, vb).sqrt()
        eps = p.fd_radius / vnorm.clamp_min(1e-30)
        if w.dim() == 3:
            ew, eb = eps.view(-1, 1, 1), eps.view(-1, 1)
        else:
            ew, eb = eps, eps
        heads = (w, b, w + ew * vw, b + eb * vb, w - ew * vw, b - eb * vb, eps)
        return Solution(heads, norm)

    def surrogate(self, zs: Tensor, ys: Tensor, zq: Tensor, yq: Tensor, sol: Solution) -> Tensor:
        w, b, wp, bp, wm, bm, eps = sol.heads
        # the l2 part of g does not depend on theta: the support CE suffices
        mixed = (head.loss(zs, ys, wp, bp) - head.loss(zs, ys, wm, bm)) / (2 * eps)
        return head.loss(zq, yq, w, b) - mixed
