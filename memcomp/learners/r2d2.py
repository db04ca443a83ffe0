"""R2D2 (Bertinetto et al. ICLR 2019): a ridge-regression head solved per task in closed form.

Per task, with support features ``X`` (n, d) extended by a column of ones (the bias) and one-hot
labels ``Y`` (n, ways), the head is the ridge-regression solution
``W = argmin ||X W - Y||^2 + lam ||W||^2 = X^T (X X^T + lam I_n)^{-1} Y`` (Woodbury identity: an
n x n system, n = ways * shots, instead of a (d+1) x (d+1) one). Query logits are
``scale * (X_q W) + shift`` with the learned scalars ``scale`` and ``shift`` (R2D2's output
calibration); ``lam`` is learned too when ``learn_lam`` (as in the paper), through ``log lam``.

The meta-gradient of the query cross-entropy flows through the solve by autograd, which
differentiates ``torch.linalg.solve`` in closed form (``dA^{-1} = -A^{-1} dA A^{-1}``): exact,
no inner loop, memory one backbone graph plus an n x n system. ``inner_steps`` / ``inner_lr`` are
not used. ``execution="batched"`` runs the backbone once per chunk over all tasks' images
(per-task BatchNorm statistics) and solves the B systems together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memcomp.learners.base import Chunk, ChunkOut, Learner
from memcomp.learners.batching import grouped_features
from memcomp.learners.family_params import R2d2Params
from memcomp.numerics import head
from memcomp.types import Task


def ridge_head(zs: Tensor, y: Tensor, lam: Tensor) -> Tensor:
    """Ridge solution ``W`` ((..., d + 1, ways)) by Woodbury: ``X^T (X X^T + lam I)^{-1} Y``.

    ``zs`` are support features (..., n, d), ``y`` labels (..., n) or one-hot targets. Under
    autocast or with bfloat16/float16 features the Gram matrix and the solve run in float32:
    torch has no low-precision LU (CPU autocast casts ``linalg.solve`` to float32, CUDA autocast
    does not), and an n x n system of bf16 Gram entries would lose most of its digits.
    """
    device = zs.device.type
    if zs.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled(device):
        with torch.autocast(device, enabled=False):
            return ridge_head(zs.float(), y.float(), lam.float())
    x = head.with_ones(zs)
    n = x.shape[-2]
    gram = x @ x.transpose(-1, -2) + lam * torch.eye(n, dtype=x.dtype, device=x.device)
    return x.transpose(-1, -2) @ torch.linalg.solve(gram, y)


class R2d2(Learner):
    """Backbone + closed-form ridge head; meta-learns the backbone, scale, shift and lambda."""

    meta_learns_head = False
    exact = True
    test_params = {"lam": 0.5}
    host_sync_free = True  # the ridge solve reads nothing back (checked by memcomp verify)
    params: R2d2Params

    def __init__(self, backbone: nn.Module, ways: int, params: R2d2Params) -> None:
        super().__init__(backbone, ways, params)
        self.scale = nn.Parameter(torch.tensor(float(params.scale)))
        self.shift = nn.Parameter(torch.tensor(0.0))
        self.log_lam = nn.Parameter(
            torch.tensor(math.log(params.lam)), requires_grad=params.learn_lam
        )

    def query_logits(self, zs: Tensor, ys: Tensor, zq: Tensor) -> Tensor:
        """Logits (..., m, ways) of the query features ``zq`` under the ridge head of ``zs``."""
        y = head.onehot(ys, self.ways, zs)
        w = ridge_head(zs, y, self.log_lam.exp())
        return self.scale * (head.with_ones(zq) @ w) + self.shift

    def _loss(self, zs: Tensor, ys: Tensor, zq: Tensor, yq: Tensor) -> Tensor:
        logits = self.query_logits(zs, ys, zq)
        return (
            F.cross_entropy(logits.flatten(0, -2), yq.flatten(), reduction="none")
            .view(yq.shape)
            .mean(-1)
        )

    def inner(self, chunk: Chunk) -> None:
        """No inner loop: the head is solved in closed form inside :meth:`hypergrad`."""
        return None

    def hypergrad(self, chunk: Chunk, state: None) -> ChunkOut:
        if not chunk.batched:
            task = chunk.tasks[0]
            zs, zq = self.backbone(task.xs), self.backbone(task.xq)
            loss = self._loss(zs, task.ys, zq, task.yq)
        else:
            zs = grouped_features(self.backbone, chunk.images("xs"))
            zq = grouped_features(self.backbone, chunk.images("xq"))
            loss = self._loss(zs, chunk.stack("ys"), zq, chunk.stack("yq"))
        return ChunkOut(loss=loss.detach(), objective=loss)

    def adapt_predict(self, task: Task) -> Tensor:
        with torch.no_grad():
            return self.query_logits(self.backbone(task.xs), task.ys, self.backbone(task.xq))
