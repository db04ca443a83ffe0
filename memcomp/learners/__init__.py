"""Learners: one registry of meta-learning algorithms sharing the :class:`Learner` interface.

Importing this package does not import torch: the built-in learners are registered lazily
(name, summary, parameter model from :mod:`memcomp.learners.params`, ``"module:Class"``), and
``Learner``, ``StepStats`` and the other torch-backed names load on first attribute access.
A plugin registers a class whose constructor is ``cls(backbone, ways, params)`` with
``@LEARNERS.register(name, summary, ParamsModel)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memcomp.learners.family_params import F2saParams, R2d2Params, RecomputeParams, SamaParams
from memcomp.learners.params import (
    AnilParams,
    ImamlParams,
    ItdBioParams,
    LearnerParams,
    MamlParams,
    MrmlParams,
)
from memcomp.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from memcomp.learners.base import Learner, StepStats

LEARNERS: Registry[Any] = Registry("learner", "memcomp.learners")

for _name, _summary, _params, _target in [
    ("anil", "ANIL: second-order meta-gradient through K SGD steps on the head only",
     AnilParams, "anil:Anil"),
    ("fomaml", "first-order MAML: query gradient at the adapted weights, no second order",
     MamlParams, "maml:FoMaml"),
    ("imaml", "iMAML: implicit meta-gradient via CG on (I + H/lam), proximal inner loop",
     ImamlParams, "imaml:Imaml"),
    ("itd-bio", "ITD-BiO: backprop through K head steps from a fixed head init into the backbone",
     ItdBioParams, "itdbio:ItdBio"),
    ("maml", "MAML: second-order meta-gradient through K SGD steps on all weights",
     MamlParams, "maml:Maml"),
    ("mrml", "Algorithm 1: implicit hypergradient, K head steps + N CG steps, no graph through "
     "either", MrmlParams, "mrml:Mrml"),
    ("maml-recompute", "MAML with gradient checkpointing through the inner loop: maml's "
     "meta-gradient, ~sqrt(K) inner-step graphs in memory", RecomputeParams,
     "recompute:MamlRecompute"),
    ("f2sa", "F2SA/F2BA: fully first-order hypergradient from two head problems (min g, "
     "min g + f/lam)", F2saParams, "f2sa:F2sa"),
    ("sama", "SAMA: implicit hypergradient, identity base Jacobian, mixed term by central "
     "finite differences of first-order gradients", SamaParams, "sama:Sama"),
    ("r2d2", "R2D2: ridge-regression head solved per task in closed form (Woodbury), "
     "differentiated through the solve", R2d2Params, "r2d2:R2d2"),
]:  # fmt: skip
    LEARNERS.register_lazy(_name, _summary, _params, f"memcomp.learners.{_target}")


def build_learner(name: str, params: dict, backbone: nn.Module, ways: int) -> Learner:
    """Validate ``params`` for learner ``name`` and build it around ``backbone``."""
    entry = LEARNERS.get(name)
    return entry.factory(backbone, ways, entry.params(**params))


_LAZY = {"Learner": "base", "StepStats": "base", "Chunk": "driver", "ChunkOut": "driver"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"memcomp.learners.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LEARNERS",
    "Chunk",
    "ChunkOut",
    "Learner",
    "LearnerParams",
    "StepStats",
    "build_learner",
]
