"""tieredImageNet (Ren et al. 2018): 608 classes in 34 superclasses, split 351/97/160 classes.

Sources in ``root`` (default ``data_root()/tiered-imagenet``), for each split ``s``:
``{s}_images_png.pkl`` (a list/array of PNG-encoded images, Ren et al.) or ``{s}_images.npz``
(array ``images``/``data``/``image_data``, N x 84 x 84 x 3; MetaOptNet/RFS), plus
``{s}_labels.pkl`` (a dict; the class label is read from ``label_specific``/``labels``/``label``/
``targets``, names from ``label_specific_str``, superclasses from ``label_general`` and
``label_general_str`` when present). Classes are sorted by label id within each split and named
``superclass/class`` where both names are known. Decoding writes through a scratch memory map, so
the ~9.5 GB train split never needs to fit in memory twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memcomp.data.base import SPLITS, FewShotDataset
from memcomp.data.cache import Decoded, cache_dir
from memcomp.data.decoding import corrupt, decode_images, load_pickle, pick, relabel, resize_uint8
from memcomp.data.params import TieredParams
from memcomp.data.realdata import RealSpec, Source, load_real
from memcomp.errors import DataError

NAME = "tiered-imagenet"
SPECIFIC_KEYS = ("label_specific", "labels", "label", "targets", "y", "label_fine")
NAME_KEYS = ("label_specific_str", "class_names", "label_names", "names")
GENERAL_KEYS = ("label_general", "labels_general", "label_coarse", "coarse_labels")
GENERAL_NAME_KEYS = ("label_general_str", "general_names", "coarse_names")


def _find(root: Path) -> Source | None:
    labels = tuple(root / f"{s}_labels.pkl" for s in SPLITS)
    if not all(f.is_file() for f in labels):
        return None
    png = tuple(root / f"{s}_images_png.pkl" for s in SPLITS)
    if all(f.is_file() for f in png):
        return Source("png-pkl", root, (*png, *labels), "Ren et al. 2018 (png pickles)")
    npz = tuple(root / f"{s}_images.npz" for s in SPLITS)
    if all(f.is_file() for f in npz):
        return Source("npz", root, (*npz, *labels), "Ren et al. 2018 (MetaOptNet npz)")
    return None


def _optional(d: dict, keys: tuple[str, ...]) -> Any | None:
    for k in keys:
        for kk in (k, k.encode()):
            if kk in d:
                return d[kk]
    return None


def _labels(path: Path) -> tuple[np.ndarray, list[str]]:
    d = load_pickle(path)
    if not isinstance(d, dict):
        d = {"labels": d}
    raw = np.asarray(pick(d, SPECIFIC_KEYS, "class labels", path)).reshape(-1)
    labels, ids = relabel(raw)
    names = _optional(d, NAME_KEYS)
    general = _optional(d, GENERAL_KEYS)
    gnames = _optional(d, GENERAL_NAME_KEYS)

    def name_of(i: Any, c: int) -> str:
        if names is not None and isinstance(i, (int, np.integer)) and 0 <= i < len(names):
            spec = str(names[i])
        else:
            spec = str(i)
        if general is not None and gnames is not None:
            g = int(np.asarray(general).reshape(-1)[np.flatnonzero(labels == c)[0]])
            if 0 <= g < len(gnames):
                return f"{gnames[g]}/{spec}"
        return spec

    return labels, [name_of(i, c) for c, i in enumerate(ids)]


def _scratch(shape: tuple[int, ...]) -> tuple[np.ndarray, Path]:
    folder = cache_dir() / "decoded"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".scratch-{uuid.uuid4().hex[:8]}.npy"
    return np.lib.format.open_memmap(path, "w+", np.uint8, shape), path


def _decode(src: Source, params: TieredParams) -> Iterator[Decoded]:
    size = params.image_size
    for s, path in zip(SPLITS, src.files[:3], strict=True):
        labels, names = _labels(src.root / f"{s}_labels.pkl")
        order = np.argsort(labels, kind="stable")
        if src.fmt == "png-pkl":
            raw = load_pickle(path)
            if isinstance(raw, dict):
                raw = pick(raw, ("images", "data", "image_data"), "PNG list", path)
            items: list[Any] = list(raw)
        else:
            try:
                with np.load(path) as z:
                    arr = pick(z, ("images", "data", "image_data", "features"), "images", path)
                    items = np.asarray(arr)
            except (OSError, ValueError, EOFError) as e:
                raise corrupt(path, e) from e
        if len(items) != len(labels):
            raise DataError(
                f"{NAME} {s}: {len(items)} images in {path.name} but {len(labels)} labels"
            )
        out, scratch = _scratch((len(items), 3, size, size))
        try:
            if src.fmt == "png-pkl":
                decode_images([items[i] for i in order], "RGB", size, out=out)
            else:
                arr = items
                if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                    raise DataError(
                        f"file {path}: images must be uint8 N x H x W x 3, got "
                        f"{arr.dtype} {arr.shape}"
                    )
                step = 4096
                for i in range(0, len(order), step):
                    out[i : i + step] = resize_uint8(
                        arr[order[i : i + step]], size, channels_last=True
                    )
            out.flush()
            yield s, out, labels[order], names
        finally:
            del out
            scratch.unlink(missing_ok=True)


SPEC = RealSpec(
    name=NAME,
    find=_find,
    decode=_decode,
    expected="{train,val,test}_images_png.pkl or {train,val,test}_images.npz, plus "
    "{train,val,test}_labels.pkl",
    how_to_get="tieredImageNet cannot be downloaded automatically: get the Ren et al. pickles "
    "(e.g. the learn2learn Zenodo mirror) or the MetaOptNet/RFS npz files, put them in DIR "
    "and pass root=DIR.",
)


def load_tiered_imagenet(params: TieredParams) -> FewShotDataset:
    return load_real(SPEC, params)
