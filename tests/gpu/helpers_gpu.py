"""Small cells for the GPU tests, built through the suite layer as a user's suite would be."""

from __future__ import annotations

from typing import Any

from memcomp.config import Cell, expand, suite_from_dict

# synthetic images (no data to prepare), few classes: the dataset builds in well under a second
SYNTHETIC = {"name": "synthetic", "train_classes": 8, "val_classes": 5, "test_classes": 5,
             "images_per_class": 12}  # fmt: skip


def cell(learner: dict[str, Any], image_size: int = 32, hidden: int = 16, **train: Any) -> Cell:
    """One cell: ``learner`` on synthetic ``image_size`` px images, Conv4-``hidden``, 5w5s5q."""
    suite = {
        "name": "gpu-test",
        "datasets": [{**SYNTHETIC, "image_size": image_size}],
        "settings": [{"ways": 5, "shots": 5, "queries": 5}],
        "backbones": [{"name": "conv4", "hidden": hidden}],
        "train": {"iterations": 2, "meta_batch": 1, "eval_every": 2, "val_episodes": 2, **train},
        "test": {"episodes": 2},
        "learners": [learner],
    }
    [one] = expand(suite_from_dict(suite))
    return one
