"""Decoding helpers of the real benchmark loaders: images, pickles, labels, bundled split lists."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memcomp.errors import DataError


def resize_uint8(images: np.ndarray, size: int, channels_last: bool = False) -> np.ndarray:
    """Resize uint8 images to ``size`` x ``size`` (bilinear, antialiased); returns (N, C, H, W)."""
    x = images.transpose(0, 3, 1, 2) if channels_last else images
    if x.shape[2] == size and x.shape[3] == size:
        return np.ascontiguousarray(x)
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=np.uint8)
    step = 512
    for i in range(0, len(x), step):
        t = torch.from_numpy(np.ascontiguousarray(x[i : i + step])).float()
        t = torch.nn.functional.interpolate(
            t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i : i + step] = t.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def decode_image(data: bytes, mode: str, size: int | None, what: str) -> np.ndarray:
    """Decode an encoded image (PNG/JPEG bytes) to uint8 (C, H, W) in PIL ``mode``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"corrupt image {what}: {e}; re-extract or re-download the files") from e
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_pickle(path: Path) -> Any:
    """Unpickle a dataset file (latin1 for Python-2 pickles); corrupt files raise DataError."""
    import pickle

    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as e:
        raise corrupt(path, e) from e


def corrupt(path: Path | str, err: BaseException) -> DataError:
    return DataError(
        f"file {path} is truncated or corrupt ({type(err).__name__}: {err}); "
        "delete it and re-download or re-extract it"
    )


def pick(d: dict, keys: Iterable[str], what: str, path: Path) -> Any:
    """First of ``keys`` present in ``d`` (str or bytes keys); DataError if none."""
    keys = list(keys)
    for k in keys:
        for kk in (k, k.encode()):
            if kk in d:
                return d[kk]
    raise DataError(
        f"file {path}: no {what} found (looked for keys {keys}; has {sorted(map(str, d))})"
    )


def relabel(raw: Iterable[Any]) -> tuple[np.ndarray, list[Any]]:
    """Map arbitrary class ids to 0..n-1 in sorted order; returns (labels, sorted ids)."""
    arr = np.asarray(list(raw) if not isinstance(raw, np.ndarray) else raw)
    ids, inv = np.unique(arr, return_inverse=True)
    return inv.astype(np.int64).reshape(-1), ids.tolist()


def read_split_list(filename: str) -> list[str]:
    """Names listed in a bundled ``memcomp/data/splits`` file (``#`` comments skipped)."""
    from importlib.resources import files

    text = files("memcomp.data").joinpath("splits", filename).read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def decode_images(
    items: list[bytes | Path],
    mode: str,
    size: int,
    what: list[str] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode encoded images (bytes or file paths) into ``out`` (N, C, size, size), threaded."""
    from concurrent.futures import ThreadPoolExecutor

    c = 1 if mode == "L" else 3
    if out is None:
        out = np.empty((len(items), c, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        item = items[i]
        name = what[i] if what is not None else str(item if isinstance(item, Path) else i)
        try:
            data = item.read_bytes() if isinstance(item, Path) else bytes(item)
        except OSError as e:
            raise corrupt(item, e) from e
        out[i] = decode_image(data, mode, size, name)

    def chunk(start: int) -> None:
        for i in range(start, min(start + 256, len(items))):
            one(i)

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(chunk, range(0, len(items), 256)))
    return out
