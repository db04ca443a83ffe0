"""``synthetic``: random uint8 images of any shape and class count, for memory and speed runs.

Each class is a smooth random mean pattern; an image is that pattern, randomly shifted by a few
pixels and mixed with uniform noise, so classes are weakly learnable and accuracy curves carry
some signal. Generation is deterministic in ``seed`` and cheap, so nothing is cached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memcomp.data.base import SPLITS, FewShotDataset, ImageSplit
from memcomp.data.cache import channel_stats, splits_checksum
from memcomp.data.params import SyntheticParams

PATTERN_CELLS = 6  # the class pattern is a PATTERN_CELLS^2 random grid, upsampled
SIGNAL = 0.2  # weight of the class pattern; the rest is per-image uniform noise
MAX_SHIFT = 0.1  # per-image circular shift of the pattern, as a fraction of the side


def make_split(
    n_classes: int, per_class: int, channels: int, size: int, gen: torch.Generator
) -> torch.Tensor:
    """uint8 images (n_classes * per_class, channels, size, size), class-major order."""
    cells = torch.rand(n_classes, channels, PATTERN_CELLS, PATTERN_CELLS, generator=gen)
    pattern = F.interpolate(cells, size=(size, size), mode="bilinear", align_corners=False)
    pattern = pattern.mul_(SIGNAL * 255.0).add_(0.5)  # + 0.5: truncation below then rounds
    reach = int(MAX_SHIFT * size)
    shifts = torch.randint(-reach, reach + 1, (n_classes, per_class, 2), generator=gen)
    out = torch.empty(n_classes, per_class, channels, size, size, dtype=torch.uint8)
    base = torch.arange(size)
    for c in range(n_classes):
        rows = (base[None, :] - shifts[c, :, 0:1]) % size  # (per_class, size)
        cols = (base[None, :] - shifts[c, :, 1:2]) % size
        moved = pattern[c][:, rows[:, :, None], cols[:, None, :]].transpose(0, 1)
        noise = torch.rand(per_class, channels, size, size, generator=gen)
        # values stay within [0.5, 255.5), so the uint8 cast needs no clamp
        out[c] = noise.mul_((1 - SIGNAL) * 255.0).add_(moved).to(torch.uint8)
    return out.flatten(0, 1)


def load_synthetic(params: SyntheticParams) -> FewShotDataset:
    """Generate the three splits deterministically from ``params.seed``."""
    counts = {
        "train": params.train_classes,
        "val": params.val_classes,
        "test": params.test_classes,
    }
    splits = {}
    for k, split in enumerate(SPLITS):
        gen = torch.Generator().manual_seed(params.seed * 1000 + k)
        n = counts[split]
        images = make_split(n, params.images_per_class, params.channels, params.image_size, gen)
        labels = torch.arange(n).repeat_interleave(params.images_per_class)
        splits[split] = ImageSplit(images, labels, [f"{split}-{c:04d}" for c in range(n)])
    mean, std = channel_stats(splits["train"].images)
    manifest = {
        "name": "synthetic",
        "format": "generated uint8 tensors (N x C x H x W)",
        "source": "torch.Generator (no files)",
        "n_classes": dict(counts),
        "images": {s: int(splits[s].labels.numel()) for s in SPLITS},
        "image_shape": [params.channels, params.image_size, params.image_size],
        "images_per_class": params.images_per_class,
        "seed": params.seed,
        "signal": SIGNAL,
        "checksum": splits_checksum({s: (sp.images, sp.labels) for s, sp in splits.items()}),
        "params": params.model_dump(),
    }
    return FewShotDataset("synthetic", splits, manifest, mean, std)
