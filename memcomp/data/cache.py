"""THE data cache: decoded or generated splits stored once, checksummed, read back memory-mapped.

``cache_dir()`` holds things memcomp can rebuild (rendered glyphs, decoded datasets):
``$MEMCOMP_CACHE`` or ``~/.cache/memcomp``. ``data_root()`` holds raw dataset files the user
provides: ``$MEMCOMP_DATA`` or ``~/.cache/memcomp/data``.

A cache entry is a folder: ``<split>_images.npy`` (uint8 N x C x H x W), ``<split>_labels.npy``
(int64) per split and ``meta.json`` (class names, counts, per-split sha256, the train split's
mean/std). :func:`write_cache` writes it into a temporary folder renamed into place, so a reader
never sees a half-written cache; :func:`read_cache` memory-maps it back (copy-on-write).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CACHE_VERSION = 2
IN_MEMORY_LIMIT = 2 << 30  # image files up to 2 GiB are read into memory, larger ones mapped
# (split name, images uint8 (N, C, H, W), labels int64 (N,) in 0..n-1, class names)
Decoded = tuple[str, np.ndarray, np.ndarray, list[str]]


def cache_dir() -> Path:
    """Folder for rebuildable caches: ``$MEMCOMP_CACHE`` or ``~/.cache/memcomp``."""
    env = os.environ.get("MEMCOMP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "memcomp"


def data_root() -> Path:
    """Folder of user-provided dataset files: ``$MEMCOMP_DATA`` or ``~/.cache/memcomp/data``."""
    env = os.environ.get("MEMCOMP_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "memcomp" / "data"


def key_digest(obj: Any, files: Iterable[Path] = ()) -> str:
    """A stable short hex key of a JSON-serialisable object plus ``files``' paths, sizes and
    mtimes (for cache folder names)."""
    h = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    text = json.dumps({"v": CACHE_VERSION, "key": obj}, sort_keys=True, default=str)
    h.update(text.encode())
    return h.hexdigest()[:20]


def _as_numpy(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def _chunks(images: np.ndarray, budget: int = 64 << 20) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``images`` of about ``budget`` elements each."""
    step = max(1, budget // max(1, int(np.prod(images.shape[1:]))))
    for i in range(0, len(images), step):
        yield np.asarray(images[i : i + step])


def arrays_sha256(images: Any, labels: Any, h: Any | None = None) -> Any:
    """Update (or start) a sha256 over images then labels (dtype, shape and bytes; in chunks, so
    it works on memory maps). Labels are hashed as int64."""
    h = h or hashlib.sha256()
    images, labels = _as_numpy(images), _as_numpy(labels).astype(np.int64)
    h.update(f"{images.dtype}|{tuple(images.shape)}|{tuple(labels.shape)}|".encode())
    for chunk in _chunks(images):
        h.update(np.ascontiguousarray(chunk).tobytes())
    h.update(np.ascontiguousarray(labels).tobytes())
    return h


def splits_checksum(splits: Mapping[str, tuple[Any, Any]]) -> str:
    """The dataset checksum: sha256 of the train/val/test (images, labels) sha256 digests."""
    per_split = [arrays_sha256(*splits[s]).hexdigest() for s in SPLITS]
    return combined_sha256(per_split)


def combined_sha256(per_split: list[str]) -> str:
    """sha256 of the per-split sha256 digests, in train/val/test order."""
    return hashlib.sha256("".join(per_split).encode()).hexdigest()


def channel_stats(images: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 images (N, C, H, W) in [0, 1] units.

    Counts a 256-bin histogram per channel in chunks, so it needs no float copy of the images
    (numpy arrays, memory maps or torch tensors). A constant channel gets std 1 (no division by 0).
    """
    images = _as_numpy(images)
    c = images.shape[1]
    hist = np.zeros((c, 256), dtype=np.int64)
    for chunk in _chunks(images):
        for ch in range(c):
            hist[ch] += np.bincount(chunk[:, ch].reshape(-1), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = np.maximum(hist.sum(axis=1), 1).astype(np.float64)
    mean = (hist * values).sum(axis=1) / n
    var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / n
    std = np.sqrt(np.maximum(var, 0.0))
    return tuple(mean.tolist()), tuple(np.where(std > 0, std, 1.0).tolist())


def write_cache(path: Path, splits: Iterable[Decoded], meta: Mapping[str, Any]) -> dict:
    """Store ``splits`` (all of train/val/test) and ``meta`` at ``path``; return the meta written.

    Written into a fresh temporary folder, then renamed to ``path``; if another process won the
    race the existing complete cache is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        out: dict[str, Any] = {**meta, "splits": {}}
        for split, images, labels, names in splits:
            if images.dtype != np.uint8 or images.ndim != 4:
                raise ValueError(f"{path.name}: split {split} is {images.dtype} {images.shape}")
            np.save(tmp / f"{split}_images.npy", images)
            np.save(tmp / f"{split}_labels.npy", labels.astype(np.int64))
            entry: dict[str, Any] = {"class_names": list(names), "n_images": int(len(labels))}
            entry["sha256"] = arrays_sha256(images, labels).hexdigest()
            if split == "train":
                out["mean"], out["std"] = channel_stats(images)
            out["splits"][split] = entry
        if sorted(out["splits"]) != sorted(SPLITS):
            raise ValueError(f"{path.name}: got splits {list(out['splits'])}, expected {SPLITS}")
        out["sha256"] = combined_sha256([out["splits"][s]["sha256"] for s in SPLITS])
        (tmp / "meta.json").write_text(json.dumps(out, indent=1, default=str))
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():  # nobody else won the race: real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_cache(
    path: Path, in_memory: bool = False, verify: bool = False
) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]] | None:
    """Meta and arrays of a cache entry, or None if it is absent, incomplete or (``verify``)
    damaged.

    Arrays are memory-mapped (copy-on-write); with ``in_memory`` image files smaller than
    ``IN_MEMORY_LIMIT`` are read into RAM instead so that episode sampling never page-faults.
    ``verify`` recomputes the sha256 of every array and rejects a mismatch.
    """
    path = Path(path)
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None

    def load(f: Path) -> np.ndarray:
        small = in_memory and f.stat().st_size < IN_MEMORY_LIMIT
        return np.load(f, mmap_mode=None if small else "c")

    try:
        meta = json.loads(meta_file.read_text())
        arrays = {
            s: (load(path / f"{s}_images.npy"), load(path / f"{s}_labels.npy")) for s in SPLITS
        }
    except (OSError, ValueError, KeyError, EOFError):  # JSONDecodeError is a ValueError;
        # EOFError: an empty .npy
        return None
    if not _meta_complete(meta, arrays):
        return None
    if verify and splits_checksum(arrays) != meta.get("sha256"):
        log.warning("ignoring damaged cache %s (checksum mismatch)", path)
        return None
    return meta, arrays


def _meta_complete(meta: Any, arrays: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether ``meta`` has what readers use, each split's counts matching its arrays."""
    if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict):
        return False
    for s in SPLITS:
        entry = meta["splits"].get(s)
        images, labels = arrays[s]
        if not isinstance(entry, dict) or not isinstance(entry.get("class_names"), list):
            return False
        if entry.get("n_images") != len(labels) or len(images) != len(labels):
            return False
    return isinstance(meta.get("sha256"), str)


def verify_cache(path: Path) -> bool | None:
    """Recompute the cached arrays' sha256 and compare with the stored one (None: no cache)."""
    if read_cache(path) is None:
        return None
    return read_cache(path, verify=True) is not None


def remove_cache(path: Path) -> None:
    """Delete a (damaged) cache entry."""
    if Path(path).exists():
        shutil.rmtree(path, ignore_errors=True)
