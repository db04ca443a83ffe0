"""The published numbers of Yang, Ma & Yu (AAAI-25), with the settings they were measured in.

Source: ``shared/reference/paper.md`` section 5 (tables 5a-5c, verbatim from the paper). Learner
keys are memcomp registry names: ``mrml`` is the paper's Algorithm 1, ``itd-bio`` is ITD-BiO.
Datasets are keyed ``cifar-fs``, ``fc100``, ``mini-imagenet`` and ``tiered-imagenet``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ACCURACY",
    "ACCURACY_SETTING",
    "MEMORY_PANELS",
    "PAPER_NAMES",
    "TIME_TO_ACCURACY",
    "MemoryPanel",
    "canonical_dataset",
    "canonical_learner",
    "learner_key",
    "memory_panel_for",
]

PAPER_NAMES = {"maml": "MAML", "anil": "ANIL", "itd-bio": "ITD-BiO", "mrml": "Algorithm 1"}

# 5a. Test accuracy (%) "mean ± std" (not a 95% CI), 5-way 5-shot (inferred), 2000 outer iterations.
ACCURACY_SETTING = {
    "ways": 5,
    "shots": 5,
    "queries": 5,
    "iterations": 2000,
    "meta_batch": 32,
    "spread": "std (unclear whether over 20 test rounds of 32 tasks or over seeds)",
    "hidden": {"cifar-fs": 64, "fc100": 64, "mini-imagenet": 32, "tiered-imagenet": 32},
    "image_size": {"cifar-fs": 32, "fc100": 32, "mini-imagenet": 84, "tiered-imagenet": 84},
}
ACCURACY: dict[str, dict[str, tuple[float, float]]] = {
    "maml": {
        "cifar-fs": (54.85, 1.23),
        "fc100": (47.50, 1.06),
        "mini-imagenet": (43.33, 0.95),
        "tiered-imagenet": (48.37, 1.17),
    },
    "anil": {
        "cifar-fs": (63.52, 1.31),
        "fc100": (47.70, 0.95),
        "mini-imagenet": (57.80, 1.14),
        "tiered-imagenet": (58.16, 0.94),
    },
    "itd-bio": {
        "cifar-fs": (63.69, 1.10),
        "fc100": (47.88, 0.74),
        "mini-imagenet": (55.58, 1.31),
        "tiered-imagenet": (60.78, 0.10),
    },
    "mrml": {
        "cifar-fs": (64.24, 1.41),
        "fc100": (48.52, 1.13),
        "mini-imagenet": (59.58, 1.08),
        "tiered-imagenet": (61.97, 0.86),
    },
}

# 5c. Wall-clock seconds to reach 0.90 x Acc_max validation accuracy; None = never reached.
TIME_TO_ACCURACY: dict[str, dict[str, float | None]] = {
    "maml": {
        "cifar-fs": None,
        "fc100": 2638.45,
        "mini-imagenet": 10065.83,
        "tiered-imagenet": 9453.75,
    },
    "anil": {
        "cifar-fs": 1130.16,
        "fc100": 879.33,
        "mini-imagenet": 1639.85,
        "tiered-imagenet": 1417.64,
    },
    "itd-bio": {
        "cifar-fs": 1740.76,
        "fc100": 1607.74,
        "mini-imagenet": 3031.51,
        "tiered-imagenet": 2059.43,
    },
    "mrml": {
        "cifar-fs": 832.40,
        "fc100": 621.67,
        "mini-imagenet": 739.62,
        "tiered-imagenet": 693.46,
    },
}


@dataclass(frozen=True)
class MemoryPanel:
    """One panel of the paper's Figure 2: peak CUDA memory (MB) per learner and inner steps K."""

    name: str
    image_size: int
    backbone: str
    hidden: int
    ways: int
    shots: int
    queries: int
    values: dict[str, dict[int, float]] = field(default_factory=dict)

    def value(self, learner: str, k: int) -> float | None:
        """The paper's MB for ``learner`` (any spelling) at ``k`` inner steps, if published."""
        key = canonical_learner(learner)
        return self.values.get(key, {}).get(int(k)) if key else None


# 5b. Figure 2 bar labels (MB), torch.cuda.max_memory_allocated per outer iteration (32 tasks run
# one after another), 5-way 5-shot with 5 query images per class.
MEMORY_PANELS = (
    MemoryPanel(
        name="miniImageNet/tieredImageNet",
        image_size=84,
        backbone="conv4",
        hidden=32,
        ways=5,
        shots=5,
        queries=5,
        values={
            "mrml": {5: 495.8, 10: 496.6, 15: 497.4, 20: 498.1},
            "itd-bio": {5: 1094.1, 10: 1892.7, 15: 2693.1, 20: 3490.8},
            "maml": {5: 1776.9, 10: 3149.3, 15: 4521.7, 20: 5894.1},
            "anil": {5: 1094.1, 10: 1892.7, 15: 2693.2, 20: 3490.9},
        },
    ),
    MemoryPanel(
        name="CIFAR-FS/FC100",
        image_size=32,
        backbone="conv4",
        hidden=64,
        ways=5,
        shots=5,
        queries=5,
        values={
            "mrml": {5: 77.5, 10: 77.7, 15: 78.0, 20: 78.2},
            "itd-bio": {5: 149.1, 10: 263.3, 15: 377.5, 20: 491.7},
            "maml": {5: 262.0, 10: 463.6, 15: 665.1, 20: 866.6},
            "anil": {5: 149.1, 10: 263.3, 15: 377.5, 20: 491.8},
        },
    ),
)

_LEARNER_ALIASES = {
    "maml": "maml",
    "anil": "anil",
    "itdbio": "itd-bio",
    "mrml": "mrml",
    "algorithm1": "mrml",
    "alg1": "mrml",
}
_DATASET_ALIASES = {
    "cifarfs": "cifar-fs",
    "fc100": "fc100",
    "miniimagenet": "mini-imagenet",
    "mini": "mini-imagenet",
    "tieredimagenet": "tiered-imagenet",
    "tiered": "tiered-imagenet",
}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def canonical_learner(name: str) -> str | None:
    """Map a learner name (``itd_bio``, ``ITD-BiO``, ``Algorithm 1``...) to a paper key."""
    return _LEARNER_ALIASES.get(_squash(name))


def learner_key(name: str) -> str:
    """The paper key of a learner name where it has one, else the name itself."""
    return canonical_learner(name) or name


def canonical_dataset(name: str) -> str | None:
    """Map a dataset name (``cifar_fs``, ``miniImageNet``...) to a paper key, or None."""
    return _DATASET_ALIASES.get(_squash(name))


def memory_panel_for(
    image_size: int, backbone: str, hidden: int, ways: int, shots: int, queries: int
) -> MemoryPanel | None:
    """The Figure 2 panel measured at exactly this shape, or None."""
    for p in MEMORY_PANELS:
        got = (int(image_size), _squash(backbone), int(hidden), int(ways), int(shots), int(queries))
        if got == (p.image_size, p.backbone, p.hidden, p.ways, p.shots, p.queries):
            return p
    return None
