"""Meta-SGD (Li, Zhou, Chen & Li 2017): MAML where the inner step is ``phi - alpha * grad`` with
``alpha`` a meta-learned tensor of the weights' shape (one learning rate per weight).

Built on memcomp's MAML (second order, sequential / batched / chunked through memcomp's driver):
the weights adapted in the inner loop are the backbone and head; the meta-parameters are those
plus the learning rates ``lrs`` (initialised to ``inner_lr``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from memcomp.learners.batching import vmapped_losses
from memcomp.learners.maml import Maml

ParamDict = dict[str, Tensor]


class MetaSgd(Maml):
    """MAML with one meta-learned inner learning rate per weight."""

    exact = True
    host_sync_free = True
    test_params = {"inner_steps": 2, "inner_lr": 0.3}

    def __init__(self, backbone: nn.Module, ways: int, params) -> None:  # noqa: ANN001
        super().__init__(backbone, ways, params)
        adapted = super().named_meta_parameters()
        self.lr_index = {n: i for i, n in enumerate(adapted)}  # weight name -> its lrs entry
        self.lrs = nn.ParameterList(
            nn.Parameter(torch.full_like(p, params.inner_lr)) for p in adapted.values()
        )

    def named_meta_parameters(self) -> ParamDict:
        """The weights the inner loop adapts (the learning rates are meta-learned, not adapted)."""
        return {
            n: p for n, p in super().named_meta_parameters().items() if not n.startswith("lrs.")
        }

    def inner(self, chunk):  # noqa: ANN001, ANN201
        # a weight frozen after construction keeps its learning rate frozen too
        weights = dict(self.named_parameters())
        for n, i in self.lr_index.items():
            self.lrs[i].requires_grad_(weights[n].requires_grad)
        return super().inner(chunk)

    def _step(self, fast: ParamDict, loss: Tensor, create_graph: bool) -> ParamDict:
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
        lrs = [self.lrs[self.lr_index[n]] for n in fast]
        return {n: p - lr * g for (n, p), g, lr in zip(fast.items(), grads, lrs, strict=True)}

    def adapt(self, start: ParamDict, xs: Tensor, ys: Tensor, steps: int, create_graph: bool):  # noqa: ANN201
        fast = start
        for _ in range(steps):
            fast = self._step(
                fast, F.cross_entropy(functional_call(self, fast, (xs,)), ys), create_graph
            )
        return fast

    def adapt_batched(
        self, start: ParamDict, xs: Tensor, ys: Tensor, steps: int, create_graph: bool
    ):  # noqa: ANN201
        fast = start
        for _ in range(steps):
            fast = self._step(fast, vmapped_losses(self, fast, xs, ys).sum(), create_graph)
        return fast
