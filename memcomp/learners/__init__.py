"""Learners: one registry of meta-learning algorithms sharing the :class:`Learner` interface.

A learner is registered as ``@LEARNERS.register(name, summary, ParamsModel)`` on a class whose
constructor is ``cls(backbone, ways, params)``.
"""

from __future__ import annotations

from torch import nn

from memcomp.learners.base import Learner, LearnerParams, StepStats
from memcomp.registry import Registry

LEARNERS: Registry[type[Learner]] = Registry("learner")


def build_learner(name: str, params: dict, backbone: nn.Module, ways: int) -> Learner:
    """Validate ``params`` for learner ``name`` and build it around ``backbone``."""
    entry = LEARNERS.get(name)
    return entry.factory(backbone, ways, entry.params(**params))


# Built-in learners register themselves on import (one line per module).
from memcomp.learners import anil, f2sa, imaml, itdbio, maml, mrml, r2d2, recompute, sama  # noqa: E402, F401

__all__ = ["LEARNERS", "Learner", "LearnerParams", "StepStats", "build_learner"]
