"""Cache and data folders, plus atomic, checksummed save/load of tensor dictionaries.

``cache_dir()`` holds things memcomp can rebuild (rendered glyphs, decoded datasets):
``$MEMCOMP_CACHE`` or ``~/.cache/memcomp``. ``data_root()`` holds raw dataset files the user
provides: ``$MEMCOMP_DATA`` or ``~/.cache/memcomp/data``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from memcomp.fsutil import atomic_open

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Folder for rebuildable caches: ``$MEMCOMP_CACHE`` or ``~/.cache/memcomp``."""
    env = os.environ.get("MEMCOMP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "memcomp"


def data_root() -> Path:
    """Folder of user-provided dataset files: ``$MEMCOMP_DATA`` or ``~/.cache/memcomp/data``."""
    env = os.environ.get("MEMCOMP_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "memcomp" / "data"


def tensors_checksum(tensors: Mapping[str, Tensor]) -> str:
    """sha256 hex over names, dtypes, shapes and bytes of ``tensors`` (in sorted name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def key_digest(obj: Any) -> str:
    """A stable short hex key of a JSON-serialisable object (for cache file names)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def save_tensors(path: Path, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> str:
    """Write ``tensors`` and JSON ``meta`` to ``path`` atomically; return their checksum.

    The file is written to a temporary name in the same folder and renamed into place, so a
    reader never sees a half-written cache.
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    checksum = tensors_checksum(tensors)
    payload = {
        "format": CACHE_FORMAT,
        "tensors": tensors,
        "meta": json.dumps(dict(meta), sort_keys=True, default=str),
        "checksum": checksum,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return checksum


def load_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Tensors and meta saved by :func:`save_tensors`, or None if missing, unreadable or corrupt."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
            raise ValueError("unknown cache format")
        tensors = payload["tensors"]
        if tensors_checksum(tensors) != payload["checksum"]:
            raise ValueError("checksum mismatch")
        meta = json.loads(payload["meta"])
    except Exception as e:  # any damage means: rebuild
        log.warning("ignoring damaged cache file %s (%s)", path, e)
        return None
    return dict(tensors), meta


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 images (N, C, H, W) in [0, 1] units.

    Uses a 256-bin histogram per channel, so it needs no float copy of the images.
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1).long(), minlength=256).double()
        n = hist.sum().clamp_min(1.0)
        mean = float((hist * values).sum() / n)
        var = float((hist * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(max(var, 0.0) ** 0.5)
    return tuple(means), tuple(stds)
