"""Algorithm 1 of the paper ("memory-reduced meta-learning"): implicit hypergradient of the head.

Bilevel problem per task: lower level ``g(theta, phi) = support CE + (l2/2)||phi||^2`` over the
linear head ``phi = (W, b)``, upper level ``f(theta, phi) = query CE``; ``theta`` is the backbone,
the head initialisation is fixed (frozen, never meta-learned). Per task:

1. features with NO graph; K gradient steps on ``g`` from the head init (or, with ``warm_start``,
   from this batch slot's last ``phi_K``) give ``phi_K``;
2. N conjugate-gradient steps (from 0 or this slot's last ``v``) on
   ``d2g/dphi2 (phi_K) v = df/dphi (phi_K)``, with closed-form Hessian-vector products;
3. features recomputed WITH graph and ONE scalar ``f(theta, phi_K) - <dg/dphi(theta, phi_K), v>``
   (``phi_K``, ``v`` constants) back-propagated: its gradient in theta is exactly
   ``df/dtheta - (d2g/dtheta dphi) v``, the paper's hypergradient (docs/design.md section 1).

Peak memory is one forward graph of the backbone, flat in K and N. ``l2 > 0`` makes the lower
level strongly convex; with ``l2 = 0`` the Hessian is singular and CG may not converge, which the
reported relative residual ``||H v - b|| / ||b||`` shows (docs/design.md section 3).

``execution="sequential"`` runs tasks one after another. ``execution="batched"`` (default) runs
``task_chunk`` tasks (all by default) together: ONE backbone forward with graph over all tasks'
support images and one over their query images (per-task BatchNorm statistics), whose detached
outputs feed the K head steps and N CG steps (batched closed forms over a leading task dimension,
no per-task Python loop), then the hypergradient as ONE backward per chunk through that graph. Its
features are the same values the sequential mode computes twice, so the meta-gradient is the same;
the graph is held during the (tiny) head steps, so peak memory is still one backbone graph, flat
in K and N, and one forward is saved.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from memcomp.learners.base import Chunk, ChunkOut, Learner
from memcomp.learners.batching import grouped_features
from memcomp.learners.params import MrmlParams
from memcomp.numerics import head
from memcomp.numerics.cg import CGResult
from memcomp.numerics.hvp import head_matvec
from memcomp.numerics.solvers import Solver, make_solver
from memcomp.types import Task


class Mrml(Learner):
    """The paper's memory-reduced meta-learner (Algorithm 1); the ``solver`` parameter (CG by
    default) picks the solver of the head's linear system (or a subclass sets ``solver``)."""

    meta_learns_head = False
    exact = False  # K head steps and N CG steps approximate the implicit hypergradient
    host_sync_free = True
    test_params = {"inner_steps": 5, "inner_lr": 0.5, "cg_steps": 5, "l2": 0.1}
    limit_params = {"inner_steps": 800, "cg_steps": 60}  # converged at test_params' lr and l2
    EXACT_STEPS = 1000  # head steps of meta_objective (the lower level solved to convergence)
    cpu_execution = "batched"
    cpu_execution_reason = (
        "1.25x faster than sequential on a 2-core CPU at the CIFAR shape, meta-batch 8 "
        "(README Speed); 1.18x on 2026-12-04 (1 thread, load average about 1)"
    )
    solver: Solver | None = None  # None: make_solver(params.solver)
    params: MrmlParams

    def linear_solver(self) -> Solver:
        """The class's ``solver`` if set, else the ``solver`` parameter's (Neumann step
        ``neumann_alpha``, by default ``inner_lr``: the lower-level step's contraction)."""
        if self.solver is not None:
            return self.solver
        p = self.params
        if p.solver == "neumann":
            return make_solver("neumann", alpha=p.neumann_alpha or p.inner_lr)
        return make_solver(p.solver)

    def __init__(self, backbone: torch.nn.Module, ways: int, params: MrmlParams) -> None:
        super().__init__(backbone, ways, params)
        self.warm_state: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.last_cg_iterations: list[int] = []
        self.compiled = False
        self._steps: Callable[..., tuple[Tensor, Tensor]] = self._head_steps
        self._solve: Callable[..., tuple[Tensor, Tensor, Tensor | None]] = self._solve_tensors

    def compile_with(self, wrap: Callable[[Callable], Callable]) -> None:
        """``train.compile``: run the head steps and the solve through ``wrap`` (a CUDA-graph
        capture or ``torch.compile``, memcomp/engine/compiling.py); the backward stays eager."""
        self._steps, self._solve = wrap(self._head_steps), wrap(self._solve_tensors)
        self.compiled = True

    def _head_steps(self, zs: Tensor, ys: Tensor, w0: Tensor, b0: Tensor) -> tuple[Tensor, Tensor]:
        p = self.params
        return head.gd(zs, ys, w0, b0, p.inner_steps, p.inner_lr, p.l2)

    def _solve_tensors(
        self, zs: Tensor, zq: Tensor, yq: Tensor, w: Tensor, b: Tensor, v0: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        p = self.params
        with torch.no_grad():
            matvec = head_matvec(zs, w, b, p.l2, self.ways, mode=p.hvp)
            rhs = head.flatten(*head.grad(zq, yq, w, b))
            res = self.linear_solver()(matvec, rhs, x0=v0, iters=p.cg_steps, tol=p.cg_tol)
        self._iterations = res.iterations
        return res.x, res.residual, res.curvature

    def reset_warm_start(self) -> None:
        """Forget every batch slot's stored ``(W_K, b_K, v)``."""
        self.warm_state.clear()

    def retry_state(self) -> dict[int, tuple[Tensor, Tensor, Tensor]]:
        return dict(self.warm_state)  # entries are replaced, never changed in place

    def restore_retry_state(self, state: dict[int, tuple[Tensor, Tensor, Tensor]]) -> None:
        self.warm_state = dict(state)

    def _start(self, slot: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Head and CG start for batch ``slot``: stored state if warm-starting, else the init."""
        w0, b0 = self.head.weight.detach(), self.head.bias.detach()
        state = self.warm_state.get(slot) if self.params.warm_start else None
        if state is None or state[0].shape != w0.shape:
            return w0, b0, None
        w, b, v = (t.to(like) for t in state)
        return w, b, v

    def lower_level(
        self, slot: int, task: Task
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """Step 1 on detached features: ``(zs, zq, W_K, b_K, v0)`` (``v0`` None: start at 0)."""
        with torch.no_grad():
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
            w0, b0, v0 = self._start(slot, zs)
            w, b = self._steps(zs, task.ys, w0, b0)
        return zs, zq, w, b, v0

    def solve(
        self, zs: Tensor, zq: Tensor, yq: Tensor, w: Tensor, b: Tensor, v0: Tensor | None
    ) -> CGResult:
        """Step 2: CG on ``d2g/dphi2 v = df/dphi`` at ``(W, b)`` (flat ``v``, see ``head``).

        Compiled, CG always starts from a tensor (zeros for ``v0`` None: the same iterates), so
        one capture serves both, and runs exactly ``cg_steps`` (``cg_tol`` is refused)."""
        if not self.compiled:
            x, residual, curvature = self._solve(zs, zq, yq, w, b, v0)
            return CGResult(x, self._iterations, residual, curvature)
        if v0 is None:
            v0 = torch.zeros_like(head.flatten(w, b))
        x, residual, curvature = self._solve(zs, zq, yq, w, b, v0)
        return CGResult(x, self.params.cg_steps, residual, curvature)

    def _starts(self, first: int, count: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Stacked :meth:`_start` of slots ``first .. first + count - 1``: (B, ...) tensors.

        ``v0`` is None when no slot has a stored solution; slots without one start CG at 0.
        """
        starts = [self._start(first + i, like) for i in range(count)]
        w0 = torch.stack([s[0] for s in starts])
        b0 = torch.stack([s[1] for s in starts])
        if all(s[2] is None for s in starts):
            return w0, b0, None
        zero = torch.zeros_like(head.flatten(w0[0], b0[0]))
        v0 = torch.stack([zero if s[2] is None else s[2] for s in starts])
        return w0, b0, v0

    def inner(self, chunk: Chunk) -> list:
        """Step 1. Batched: features WITH graph (kept for the one backward), detached copies feed
        the head steps. Sequential: features without graph. Returns a list :meth:`hypergrad`
        empties (so the no-graph features are freed before the graph is built)."""
        if chunk.first == 0:
            self.last_cg_iterations = []
        if not chunk.batched:
            return list(self.lower_level(chunk.first, chunk.tasks[0]))
        zs_g = grouped_features(self.backbone, chunk.images("xs"))
        zq_g = grouped_features(self.backbone, chunk.images("xq"))
        zs = zs_g.detach()
        w0, b0, v0 = self._starts(chunk.first, len(chunk.tasks), zs)
        w, b = self._steps(zs, chunk.stack("ys"), w0, b0)
        return [zs_g, zq_g, w, b, v0]

    def hypergrad(self, chunk: Chunk, state: list) -> ChunkOut:
        """Steps 2 and 3: CG, then the scalar whose gradient in theta is the hypergradient."""
        zs, zq, w, b, v0 = state
        state.clear()
        if chunk.batched:
            ys, yq = chunk.stack("ys"), chunk.stack("yq")
            res = self.solve(zs.detach(), zq.detach(), yq, w, b, v0)
            norm = head.sq_norm(*head.grad(zs.detach(), ys, w, b, self.params.l2)).sqrt()
        else:
            task = chunk.tasks[0]
            ys, yq = task.ys, task.yq
            res = self.solve(zs, zq, yq, w, b, v0)
            norm = head.sq_norm(*head.grad(zs, ys, w, b, self.params.l2)).sqrt()
            del zs, zq
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
        vw, vb = head.unflatten(res.x, self.ways)
        f = head.loss(zq, yq, w, b)
        # the l2 part of dg/dphi does not depend on theta: the support CE suffices
        gw, gb = head.grad(zs, ys, w, b)
        if chunk.batched:
            objective = f - ((gw * vw).sum((-1, -2)) + (gb * vb).sum(-1))
        else:
            objective = f - (gw * vw).sum() - (gb * vb).sum()
        self._remember(chunk, w, b, res)
        return ChunkOut(
            loss=f.detach(),
            objective=objective,
            cg_residual=res.residual,
            lower_grad_norm=norm,
            cg_curvature=res.curvature,
        )

    def _remember(self, chunk: Chunk, w: Tensor, b: Tensor, res: CGResult) -> None:
        """Warm-start state and CG iteration counts of the chunk's batch slots."""
        k = len(chunk.tasks)
        if self.params.warm_start:
            for i in range(k):
                slot = chunk.first + i
                self.warm_state[slot] = (w[i], b[i], res.x[i]) if chunk.batched else (w, b, res.x)
        self.last_cg_iterations += [res.iterations] * k

    def meta_objective(self, tasks: list[Task]) -> Tensor:  # type: ignore[override]
        """``F(theta)``: mean query CE at the lower level solved to convergence (head GD for
        ``EXACT_STEPS`` steps from the head init), the objective of the exact hypergradient."""
        p = self.params
        total = torch.zeros((), dtype=self.head.weight.dtype)
        with torch.no_grad():
            for task in tasks:
                zs, zq = self.backbone(task.xs), self.backbone(task.xq)
                w0, b0 = self.head.weight, self.head.bias
                w, b = head.gd(zs, task.ys, w0, b0, self.EXACT_STEPS, p.inner_lr, p.l2)
                total = total + head.loss(zq, task.yq, w, b)
        return total / len(tasks)

    def adapt_predict(self, task: Task) -> Tensor:
        return self.head_gd_predict(task, self.params.l2)
