"""Peer implementations for ``speed.py --peers`` (optional; never needed to use memcomp).

* ``higher-maml``: second-order MAML with ``higher.innerloop_ctx`` (``pip install higher``), tasks
  one after another as its examples do, on memcomp's own model (same weights, same tasks).

A peer is called as ``peer(learner, tasks)`` with memcomp's sequential learner built by
``speed.py``, so this module never imports ``speed.py`` (no import circle).

Before timing, each peer's meta-gradient is checked against memcomp's sequential learner on the
same tasks (relative error <= 1e-4 in float32); a mismatch raises. A peer whose package is not
importable raises ImportError, which ``speed.py`` records as the row's status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from memcomp.types import Task

Step = Callable[[], None]


def _flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


def higher_maml(learner: Any, tasks: list[Task]) -> tuple:
    """``(step, resident)`` of higher's MAML on ``learner`` (memcomp's sequential ``maml``)."""
    import higher  # optional peer dependency

    steps, lr = learner.params.inner_steps, learner.params.inner_lr
    meta = learner.meta_parameters()
    opt = torch.optim.Adam(meta, lr=1e-4)
    inner_opt = torch.optim.SGD(meta, lr=lr)

    def backward() -> None:
        for t in tasks:
            with higher.innerloop_ctx(learner, inner_opt, copy_initial_weights=False) as (
                fmodel,
                diffopt,
            ):
                for _ in range(steps):
                    diffopt.step(F.cross_entropy(fmodel(t.xs), t.ys))
                (F.cross_entropy(fmodel(t.xq), t.yq) / len(tasks)).backward()

    opt.zero_grad(set_to_none=True)
    learner.meta_backward(tasks)
    ours = _flat_grad(meta)
    opt.zero_grad(set_to_none=True)
    backward()
    theirs = _flat_grad(meta)
    err = float((theirs - ours).norm() / ours.norm())
    if not err <= 1e-4:
        raise RuntimeError(f"higher-maml meta-gradient differs from memcomp's: rel. error {err}")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        backward()
        opt.step()

    return step, [learner, opt, tasks]


PEERS: dict[str, Callable[..., tuple]] = {"higher-maml": higher_maml}
