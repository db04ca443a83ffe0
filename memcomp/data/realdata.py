"""Shared machinery of the real benchmark loaders: locating sources, decoding once, validating.

A real dataset module supplies a :class:`RealSpec`: how to find its source files under a root and
how to decode them split by split into uint8 arrays; its params model (a
:class:`~memcomp.data.params.RealParams`) declares the standard shape of the benchmark (classes
per split, images per class). :func:`load_real` then

1. finds the source (or raises a :class:`DataError` naming the path, the expected files and how to
   get them),
2. decodes it once into the data cache (:mod:`memcomp.data.cache`) at
   ``cache_dir()/decoded/<name>-<key>/``, where ``key`` hashes the source files' names, sizes and
   mtimes plus the decoding parameters,
3. memory-maps the arrays back and validates class and image counts.

The manifest records the format, split source, counts, the sha256 of the decoded arrays and the
cache folder; mean/std are per-channel statistics of the train split in [0, 1] units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memcomp.data.base import SPLITS, FewShotDataset, ImageSplit
from memcomp.data.cache import (
    Decoded,
    cache_dir,
    data_root,
    key_digest,
    read_cache,
    remove_cache,
    write_cache,
)
from memcomp.data.params import RealParams, Standard
from memcomp.errors import DataError

__all__ = ["Decoded", "RealParams", "RealSpec", "Source", "Standard", "load_real"]


@dataclass(frozen=True)
class Source:
    """Source files found for a dataset: the detected format and the files to fingerprint."""

    fmt: str
    root: Path
    files: tuple[Path, ...]
    split_source: str = ""


def _params_standard(params: Any) -> Standard:
    return params.standard()


@dataclass(frozen=True)
class RealSpec:
    """What :func:`load_real` needs from one dataset module."""

    name: str
    find: Callable[[Path], Source | None]
    decode: Callable[[Source, Any], Iterator[Decoded]]
    expected: str  # files looked for, in words
    how_to_get: str  # how to obtain them
    standard: Callable[[Any], Standard] = _params_standard  # default: the params' declaration
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


def cache_path(spec: RealSpec, src: Source, params: Any) -> Path:
    key = key_digest({"fmt": src.fmt, **spec.decode_key(params)}, src.files)
    return cache_dir() / "decoded" / f"{spec.name}-{key}"


def _decode(spec: RealSpec, src: Source, params: Any) -> Iterator[Decoded]:
    seen = []
    for split, images, labels, names in spec.decode(src, params):
        if images.dtype != "uint8" or images.ndim != 4:
            raise DataError(f"{spec.name}: decoder produced {images.dtype} {images.shape}")
        seen.append(split)
        yield split, images, labels, names
    if sorted(seen) != sorted(SPLITS):
        raise DataError(f"{spec.name}: decoder produced splits {seen}, expected {SPLITS}")


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
        remove_cache(path)
        meta = {"format": src.fmt, "source_root": str(src.root), "split_source": src.split_source}
        write_cache(path, _decode(spec, src, params), meta)
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
