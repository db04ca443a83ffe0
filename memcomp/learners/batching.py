"""Batched maths for the learners' stacked chunks (the driver, :mod:`memcomp.learners.driver`,
decides when a chunk is stacked):

* head-adapting learners (anil, itd-bio, mrml) run the backbone ONCE over the stacked images of
  the chunk with per-task BatchNorm statistics (:func:`grouped_features`) and do the head maths
  batched over a leading task dimension;
* MAML-style learners (maml, fomaml, imaml) evaluate all tasks' losses at per-task weights with
  ``torch.func.vmap`` over ``functional_call`` (:func:`vmapped_losses`) and differentiate the summed
  loss with plain ``torch.autograd`` (each task's weights only reach its own loss, so the gradient
  of the sum is every task's own gradient). Plain autograd outside vmap is exact with the fused
  BatchNorm; ``torch.func.grad`` inside vmap is not (docs/design.md section 5).

Both modes give the same meta-gradient (tested in float64). Batching needs every task of a chunk
to have the same shapes; otherwise the driver runs one task at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from memcomp.backbones.norm import TaskBatchNorm2d, deinterleave, interleave, task_groups


def grouped_features(backbone: nn.Module, images: Sequence[Tensor]) -> Tensor:
    """Features (B, n, d) of B tasks' images (each (n, C, H, W)) in ONE backbone forward.

    BatchNorm layers that are :class:`~memcomp.backbones.norm.TaskBatchNorm2d` use each task's
    own statistics, so this equals ``torch.stack([backbone(x) for x in images])``.
    """
    b = len(images)
    check_task_norm(backbone)
    x = interleave(torch.stack(list(images)))
    with task_groups(b):
        z = backbone(x)
    return deinterleave(z, b)


def check_task_norm(backbone: nn.Module) -> None:
    """Refuse backbones whose BatchNorm would mix tasks' statistics in a grouped forward."""
    for m in backbone.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, TaskBatchNorm2d):
            raise ValueError(
                f"batched execution needs TaskBatchNorm2d, found {type(m).__name__}; "
                "use execution='sequential'"
            )


def vmapped_losses(model: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Per-task cross-entropy (B,) of ``model`` at per-task weights ``params`` (each (B, ...)).

    Parameters of ``model`` missing from ``params`` (frozen ones) are shared by all tasks.
    A BatchNorm with running statistics cannot run inside vmap: refused with the fix named.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training:
            raise ValueError(
                f"batched execution cannot update the running statistics of {type(m).__name__} "
                "(track_running_stats=True) inside torch.func.vmap; use "
                "memcomp.backbones.norm.TaskBatchNorm2d(C, track_running_stats=False) in the "
                "backbone, or execution='sequential'"
            )

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, p, (xi,)), yi)

    return vmap(one)(params, x, y)
