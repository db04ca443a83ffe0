"""Shared machinery of the real benchmark loaders: locating sources, decoding once, caching.

A real dataset module supplies a :class:`RealSpec`: how to find its source files under a root, how
to decode them split by split into uint8 arrays, and the standard shape of the benchmark (classes
per split, images per class). :func:`load_real` then

1. finds the source (or raises a :class:`DataError` naming the path, the expected files and how to
   get them),
2. decodes it once into ``cache_dir()/decoded/<name>-<key>/`` (one ``.npy`` per array, written to
   a temporary folder and renamed into place, so an interrupted run never leaves a half cache),
   where ``key`` hashes the source files' names, sizes and mtimes plus the decoding parameters,
3. memory-maps the arrays back (copy-on-write) and validates class and image counts.

The manifest records the format, split source, counts, the sha256 of the decoded arrays and the
cache folder; mean/std are per-channel statistics of the train split in [0, 1] units.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from memcomp.data import DatasetParams
from memcomp.data.base import SPLITS, FewShotDataset, ImageSplit
from memcomp.data.cache import cache_dir, data_root
from memcomp.errors import DataError
from memcomp.registry import PathOption

CACHE_VERSION = 1
# (split name, images uint8 (N, C, H, W), labels int64 (N,) in 0..n-1, class names)
Decoded = tuple[str, np.ndarray, np.ndarray, list[str]]


class RealParams(DatasetParams):
    """Options shared by the real benchmark loaders."""

    root: PathOption | None = Field(
        None, description="dataset folder (default: data_root()/<name>)"
    )
    normalize: bool = Field(True, description="normalise episodes by the train mean/std")
    strict: bool = Field(
        True,
        description="check the standard class counts per split and images per class "
        "(set false to load a subset of the benchmark)",
    )
    min_per_class: int = Field(1, ge=1, description="fail if a class has fewer images")


@dataclass(frozen=True)
class Source:
    """Source files found for a dataset: the detected format and the files to fingerprint."""

    fmt: str
    root: Path
    files: tuple[Path, ...]
    split_source: str = ""


@dataclass(frozen=True)
class Standard:
    """The standard benchmark: classes per split and images per class or per split."""

    classes: dict[str, int]
    per_class: int | None = None
    per_split: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RealSpec:
    """What :func:`load_real` needs from one dataset module."""

    name: str
    find: Callable[[Path], Source | None]
    decode: Callable[[Source, Any], Iterator[Decoded]]
    expected: str  # files looked for, in words
    how_to_get: str  # how to obtain them
    standard: Callable[[Any], Standard]
    decode_key: Callable[[Any], dict] = lambda p: {"image_size": p.image_size}
    subdirs: tuple[str, ...] = ()  # other folders under data_root() searched after <name>
    download: Callable[[Path], None] | None = None  # fetch the source into a folder


def dataset_roots(spec: RealSpec, root: Path | None, base: Path | None = None) -> list[Path]:
    """Folders searched: ``root`` if given, else ``<base>/<name>`` and ``<base>/<subdir>``s
    (``base`` defaults to data_root())."""
    if root is not None:
        return [Path(root).expanduser()]
    base = data_root() if base is None else Path(base).expanduser()
    return [base / spec.name, *(base / d for d in spec.subdirs)]


def find_source(spec: RealSpec, root: Path | None, base: Path | None = None) -> Source | None:
    """The first source found in :func:`dataset_roots`, or None."""
    for r in dataset_roots(spec, root, base):
        if r.is_dir():
            src = spec.find(r)
            if src is not None:
                return src
    return None


def missing_error(spec: RealSpec, root: Path | None) -> DataError:
    where = ", ".join(str(r) for r in dataset_roots(spec, root))
    return DataError(
        f"dataset {spec.name!r} not found: looked in {where} for {spec.expected}. {spec.how_to_get}"
    )


def fingerprint(files: Iterable[Path], extra: dict) -> str:
    """Hash of the files' paths, sizes and mtimes plus ``extra`` (decoding parameters)."""
    h = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps({"v": CACHE_VERSION, **extra}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cache_path(spec: RealSpec, src: Source, params: Any) -> Path:
    key = fingerprint(src.files, {"fmt": src.fmt, **spec.decode_key(params)})
    return cache_dir() / "decoded" / f"{spec.name}-{key}"


def arrays_sha256(images: np.ndarray, labels: np.ndarray, h: Any | None = None) -> Any:
    """Update (or start) a sha256 over images then labels, in chunks (works on memmaps)."""
    h = h or hashlib.sha256()
    step = max(1, (64 << 20) // max(1, int(np.prod(images.shape[1:]))))
    for i in range(0, len(images), step):
        h.update(np.ascontiguousarray(images[i : i + step]).tobytes())
    h.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return h


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1] (float64)."""
    c = images.shape[1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    n = 0
    step = max(1, (32 << 20) // max(1, int(np.prod(images.shape[1:]))))
    for i in range(0, len(images), step):
        x = np.asarray(images[i : i + step], dtype=np.float64) / 255.0
        s += x.sum(axis=(0, 2, 3))
        s2 += (x * x).sum(axis=(0, 2, 3))
        n += x.shape[0] * x.shape[2] * x.shape[3]
    if n == 0:
        return [0.0] * c, [1.0] * c
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def _write_cache(path: Path, spec: RealSpec, src: Source, params: Any) -> None:
    """Decode ``src`` into a fresh temporary folder, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        meta: dict[str, Any] = {"splits": {}, "format": src.fmt, "source_root": str(src.root)}
        meta["split_source"] = src.split_source
        seen = []
        for split, images, labels, names in spec.decode(src, params):
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DataError(f"{spec.name}: decoder produced {images.dtype} {images.shape}")
            np.save(tmp / f"{split}_images.npy", images)
            np.save(tmp / f"{split}_labels.npy", labels.astype(np.int64))
            entry: dict[str, Any] = {"class_names": list(names), "n_images": int(len(labels))}
            entry["sha256"] = arrays_sha256(images, labels).hexdigest()
            if split == "train":
                meta["mean"], meta["std"] = channel_stats(images)
            meta["splits"][split] = entry
            seen.append(split)
        if sorted(seen) != sorted(SPLITS):
            raise DataError(f"{spec.name}: decoder produced splits {seen}, expected {SPLITS}")
        meta["sha256"] = combined_sha256([meta["splits"][s]["sha256"] for s in SPLITS])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():  # nobody else won the race: real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


IN_MEMORY_LIMIT = 2 << 30  # image files up to 2 GiB are read into memory, larger ones mapped


def read_cache(
    path: Path, in_memory: bool = False
) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]] | None:
    """Meta and arrays of a decoded cache, or None if it is absent/incomplete.

    Arrays are memory-mapped (copy-on-write); with ``in_memory`` image files smaller than
    ``IN_MEMORY_LIMIT`` are read into RAM instead so that episode sampling never page-faults.
    """
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
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    return meta, arrays


def verify_cache(path: Path) -> bool | None:
    """Recompute the decoded arrays' sha256 and compare with the stored one (None: no cache)."""
    got = read_cache(path)
    if got is None:
        return None
    meta, arrays = got
    per_split = [arrays_sha256(*arrays[s]).hexdigest() for s in SPLITS]
    return combined_sha256(per_split) == meta.get("sha256")


def combined_sha256(per_split: list[str]) -> str:
    """The dataset checksum: sha256 of the train/val/test arrays' sha256 digests."""
    return hashlib.sha256("".join(per_split).encode()).hexdigest()


def validate(name: str, splits: dict[str, ImageSplit], params: Any, std: Standard) -> None:
    """Raise :class:`DataError` for empty classes, too few images, or non-standard counts."""
    for s, sp in splits.items():
        if sp.n_classes == 0:
            raise DataError(f"dataset {name!r}: split {s!r} has no images")
        if params.strict:
            want = std.classes.get(s)
            if want is not None and sp.n_classes != want:
                raise DataError(
                    f"dataset {name!r}: split {s!r} has {sp.n_classes} classes, expected {want} "
                    "in the standard split; the files may be incomplete, or pass strict=false "
                    "to load a subset"
                )
            want_n = std.per_split.get(s)
            if want_n is not None and len(sp.labels) != want_n:
                raise DataError(
                    f"dataset {name!r}: split {s!r} has {len(sp.labels)} images, expected "
                    f"{want_n}; the files may be incomplete, or pass strict=false"
                )
        for c, n in enumerate(sp.counts.tolist()):
            label = sp.class_names[c] if c < len(sp.class_names) else str(c)
            if n < params.min_per_class:
                raise DataError(
                    f"dataset {name!r}: class {label!r} of split {s!r} has {n} images, "
                    f"fewer than min_per_class={params.min_per_class}; the files may be "
                    "incomplete (re-extract or re-download them)"
                )
            if params.strict and std.per_class is not None and n != std.per_class:
                raise DataError(
                    f"dataset {name!r}: class {label!r} of split {s!r} has {n} images, expected "
                    f"{std.per_class}; the files may be incomplete (re-extract or re-download "
                    "them), or pass strict=false to load a subset"
                )


def ensure_cache(spec: RealSpec, params: Any) -> tuple[Source, Path]:
    """Find the source and decode it into the cache unless already there."""
    src = find_source(spec, params.root)
    if src is None and getattr(params, "download", False) and spec.download is not None:
        spec.download(dataset_roots(spec, params.root)[-1 if params.root is None else 0])
        src = find_source(spec, params.root)
    if src is None:
        raise missing_error(spec, params.root)
    path = cache_path(spec, src, params)
    if read_cache(path) is None:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        _write_cache(path, spec, src, params)
    return src, path


def load_real(spec: RealSpec, params: Any) -> FewShotDataset:
    """Find, decode (once, cached) and validate a real dataset."""
    src, path = ensure_cache(spec, params)
    got = read_cache(path, in_memory=True)
    if got is None:  # pragma: no cover - just written
        raise DataError(f"dataset {spec.name!r}: decoded cache {path} is unreadable; delete it")
    meta, arrays = got
    splits = {}
    for s in SPLITS:
        images, labels = arrays[s]
        splits[s] = ImageSplit(
            torch.from_numpy(images), torch.from_numpy(labels), meta["splits"][s]["class_names"]
        )
    validate(spec.name, splits, params, spec.standard(params))
    shape = splits["train"].image_shape
    manifest = {
        "name": spec.name,
        "format": src.fmt,
        "root": str(src.root),
        "split_source": src.split_source,
        "counts": {
            s: {"classes": sp.n_classes, "images": len(sp.labels)} for s, sp in splits.items()
        },
        "image_shape": list(shape),
        "checksum": meta["sha256"],
        "cache": str(path),
    }
    if params.normalize:
        mean, std = tuple(meta["mean"]), tuple(meta["std"])
    else:
        mean = std = None
    return FewShotDataset(spec.name, splits, manifest, mean, std)


# ---------------------------------------------------------------- decoding helpers


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
