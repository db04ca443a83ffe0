"""The one meaning of ``flatten`` in memcomp: parameter lists <-> one flat vector.

Every module that packs a list of tensors into one vector (meta-gradients, implicit solves, exact
references, benchmarks) uses these functions, so one layout holds everywhere: the tensors in list
order, each row-major. ``batch_dims`` leading dimensions are kept (per-task tensors (B, ...) give a
(B, q) matrix). The linear head's ``(W, b)`` has its own layout, rows ``[W_k, b_k]``
(:func:`flatten_head`), which its closed forms index by class; ``memcomp.numerics.head``
re-exports it as ``head.flatten``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor], batch_dims: int = 0) -> Tensor:
    """Concatenate ``tensors`` into one vector, or (with ``batch_dims``) one vector per leading
    index: each tensor ``(*batch, ...)`` contributes its trailing elements, in order."""
    return torch.cat([t.reshape(*t.shape[:batch_dims], -1) for t in tensors], batch_dims)


def unflatten(vec: Tensor, like: Sequence[Tensor], batch_dims: int = 0) -> list[Tensor]:
    """Inverse of :func:`flatten`: split ``vec`` into views shaped as ``like`` (which have the same
    ``batch_dims`` leading dimensions as ``vec``)."""
    sizes = [t.shape[batch_dims:].numel() for t in like]
    parts = torch.split(vec, sizes, dim=batch_dims)
    return [p.reshape(t.shape) for p, t in zip(parts, like, strict=True)]


def batch_flatten(tensors: Sequence[Tensor]) -> Tensor:
    """:func:`flatten` of per-task tensors (each (B, ...)) into one (B, q) matrix."""
    return flatten(tensors, 1)


def batch_unflatten(mat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Inverse of :func:`batch_flatten`."""
    return unflatten(mat, like, 1)


def flatten_head(w: Tensor, b: Tensor) -> Tensor:
    """Pack a linear head ``(W, b)`` into one vector per task: (..., ways * (d + 1)), rows
    ``[W_k, b_k]``."""
    return torch.cat([w, b.unsqueeze(-1)], -1).flatten(-2)


def unflatten_head(v: Tensor, ways: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`flatten_head`."""
    m = v.unflatten(-1, (ways, -1))
    return m[..., :-1], m[..., -1]
