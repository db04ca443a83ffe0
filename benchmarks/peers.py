"""Peer implementations for ``speed.py --peers`` (optional; never needed to use memcomp).

* ``higher-maml``: second-order MAML with ``higher.innerloop_ctx`` (``pip install higher``, the
  ``bench`` extra), tasks one after another as its examples do, on memcomp's own model (same
  weights, same tasks).

A :class:`Peer` names the memcomp learner it re-implements and builds, for that learner's module
and a list of tasks, a ``backward()`` that accumulates the mean meta-gradient over the tasks into
the ``.grad`` of ``learner.meta_parameters()``, as ``learner.meta_backward`` does. ``speed.py``
checks it against memcomp's learner in float64 on the run's device before timing it (a mismatch
or an error is the row's ``peer_check``, never the end of the run), so this module never imports
``speed.py`` (no import circle). A peer whose package is missing raises ImportError when built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from memcomp.types import Task

Backward = Callable[[], None]


@dataclass(frozen=True)
class Peer:
    """Another implementation of memcomp learner ``learner``: ``build(module, tasks)`` gives its
    ``backward()``."""

    name: str
    learner: str
    build: Callable[[Any, Sequence[Task]], Backward]


def higher_maml(learner: Any, tasks: Sequence[Task]) -> Backward:
    """higher's second-order MAML on ``learner`` (memcomp's ``maml`` module: same weights)."""
    import higher  # optional peer dependency

    steps, lr = learner.params.inner_steps, learner.params.inner_lr
    inner_opt = torch.optim.SGD(learner.meta_parameters(), lr=lr)

    def backward() -> None:
        for t in tasks:
            with higher.innerloop_ctx(learner, inner_opt, copy_initial_weights=False) as (
                fmodel,
                diffopt,
            ):
                for _ in range(steps):
                    diffopt.step(F.cross_entropy(fmodel(t.xs), t.ys))
                (F.cross_entropy(fmodel(t.xq), t.yq) / len(tasks)).backward()

    return backward


PEERS: dict[str, Peer] = {"higher-maml": Peer("higher-maml", "maml", higher_maml)}
