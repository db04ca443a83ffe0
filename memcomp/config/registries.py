"""The component registries by kind, imported on first use (so importing the config layer
imports no torch of its own)."""

from __future__ import annotations

from typing import Any

from memcomp.registry import Registry

KINDS = ("dataset", "backbone", "learner")


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (imported here, on first use)."""
    if kind == "dataset":
        from memcomp.data import DATASETS

        return DATASETS
    if kind == "backbone":
        from memcomp.backbones import BACKBONES

        return BACKBONES
    if kind == "learner":
        from memcomp.learners import LEARNERS

        return LEARNERS
    raise ValueError(f"unknown component kind {kind!r}")
