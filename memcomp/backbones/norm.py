"""Per-task BatchNorm over a batch of tasks in one fused kernel.

A meta-batch of B tasks with n images each can run through the backbone as ONE batch while every
BatchNorm still normalises each task with that task's own statistics: fold the task dimension into
the channels, (n, B*C, H, W), and call the fused batch norm with the affine weights repeated per
task (docs/design.md, "Folded per-task BatchNorm").

:class:`TaskBatchNorm2d` is an ``nn.BatchNorm2d`` (same parameters, same state dict) that does
this while a :func:`task_groups` context is active. Two input layouts are accepted:

* ``interleaved`` (default): row ``i * B + t`` is image ``i`` of task ``t``, i.e.
  ``torch.stack(per_task, 1).flatten(0, 1)``; folding is then a free view;
* ``blocked``: row ``t * n + i``, i.e. ``torch.cat(per_task)``; folding copies (a transpose).

Convolutions, pooling and activations act per image, so the whole backbone forward over the
stacked images equals the per-task forwards. Outside the context the module is a plain
``nn.BatchNorm2d``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

Layout = Literal["interleaved", "blocked"]


@dataclass(frozen=True)
class _Groups:
    tasks: int
    layout: Layout


_GROUPS: contextvars.ContextVar[_Groups | None] = contextvars.ContextVar(
    "memcomp_task_groups", default=None
)


@contextlib.contextmanager
def task_groups(tasks: int, layout: Layout = "interleaved") -> Iterator[None]:
    """Inside, every :class:`TaskBatchNorm2d` treats its input as ``tasks`` equal-size tasks."""
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks}")
    if layout not in ("interleaved", "blocked"):
        raise ValueError(f"unknown layout {layout!r}")
    token = _GROUPS.set(_Groups(tasks, layout))
    try:
        yield
    finally:
        _GROUPS.reset(token)


def interleave(per_task: Tensor) -> Tensor:
    """(B, n, ...) -> (n * B, ...) in the ``interleaved`` layout."""
    return per_task.transpose(0, 1).flatten(0, 1)


def deinterleave(stacked: Tensor, tasks: int) -> Tensor:
    """Inverse of :func:`interleave`: (n * B, ...) -> (B, n, ...)."""
    return stacked.unflatten(0, (-1, tasks)).transpose(0, 1)


class TaskBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with per-task batch statistics inside :func:`task_groups`."""

    def forward(self, x: Tensor) -> Tensor:
        groups = _GROUPS.get()
        if groups is None or groups.tasks == 1:
            return super().forward(x)
        if self.track_running_stats:
            raise NotImplementedError("per-task folding needs track_running_stats=False")
        b, (rows, c, h, w) = groups.tasks, x.shape
        if rows % b:
            raise ValueError(f"{rows} images do not split into {b} equal tasks")
        n = rows // b
        if groups.layout == "interleaved":
            folded = x.reshape(n, b * c, h, w)
        else:
            folded = x.reshape(b, n, c, h, w).transpose(0, 1).reshape(n, b * c, h, w)
        weight = None if self.weight is None else self.weight.repeat(b)
        bias = None if self.bias is None else self.bias.repeat(b)
        out = F.batch_norm(folded, None, None, weight, bias, True, 0.0, self.eps)
        if groups.layout == "interleaved":
            return out.reshape(rows, c, h, w)
        return out.reshape(n, b, c, h, w).transpose(0, 1).reshape(rows, c, h, w)
