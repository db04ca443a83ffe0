"""miniImageNet (Vinyals et al. 2016) with the Ravi & Larochelle (2017) 64/16/20 class split.

Sources in ``root`` (default ``data_root()/mini-imagenet``), detected in this order:

1. ``train.csv``, ``val.csv``, ``test.csv`` (``filename,label``) and an ``images/`` folder (Ravi
   CSVs as rebuilt by mini-imagenet-tools; fingerprinted by the CSVs and the folder's mtime);
2. ``mini-imagenet-cache-{train,val,test}.pkl``: ``{'image_data': uint8[N,84,84,3],
   'class_dict': {wnid: [indices]}}`` (Ren et al.; learn2learn);
3. ``{name}{train,val,test}.npz`` for name in ``mini-imagenet-``, ``mini-imagenet-cache-``, ``""``
   with an image array (``image_data``/``images``/``data``/``x``, N x H x W x 3) and labels
   (``labels``/``label``/``targets``/``y``, any ids) or a ``class_dict``;
4. MetaOptNet/RFS pickles ``miniImageNet_category_split_{train_phase_train,val,test}.pickle``.

Classes are sorted by id (wnid) within each split; images are resized to ``image_size`` (default
84) if needed (Lanczos for files, antialiased bilinear for arrays).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memcomp.data.base import SPLITS, FewShotDataset
from memcomp.data.cache import Decoded
from memcomp.data.decoding import corrupt, decode_images, load_pickle, pick, relabel, resize_uint8
from memcomp.data.params import MiniParams
from memcomp.data.realdata import RealSpec, Source, load_real
from memcomp.errors import DataError

NAME = "mini-imagenet"
IMAGE_KEYS = ("image_data", "images", "data", "x", "features")
LABEL_KEYS = ("labels", "label", "targets", "y")
NPZ_PREFIXES = ("mini-imagenet-", "mini-imagenet-cache-", "")
MOP = "miniImageNet_category_split_{}.pickle"
MOP_SPLITS = {"train": "train_phase_train", "val": "val", "test": "test"}


def _find(root: Path) -> Source | None:
    csvs = tuple(root / f"{s}.csv" for s in SPLITS)
    if all(f.is_file() for f in csvs) and (root / "images").is_dir():
        return Source("ravi-csv", root, (*csvs, root / "images"), "Ravi & Larochelle CSVs")
    pkls = tuple(root / f"mini-imagenet-cache-{s}.pkl" for s in SPLITS)
    if all(f.is_file() for f in pkls):
        return Source("cache-pkl", root, pkls, "Ravi & Larochelle (pickled cache)")
    for prefix in NPZ_PREFIXES:
        npzs = tuple(root / f"{prefix}{s}.npz" for s in SPLITS)
        if all(f.is_file() for f in npzs):
            return Source("npz", root, npzs, "Ravi & Larochelle (npz)")
    mop = tuple(root / MOP.format(MOP_SPLITS[s]) for s in SPLITS)
    if all(f.is_file() for f in mop):
        return Source("metaoptnet-pickle", root, mop, "Ravi & Larochelle (MetaOptNet pickles)")
    return None


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except (OSError, UnicodeDecodeError) as e:
        raise corrupt(path, e) from e
    if rows and rows[0][:2] == ["filename", "label"]:
        rows = rows[1:]
    if any(len(r) < 2 for r in rows):
        raise DataError(f"file {path}: expected rows 'filename,label'")
    return [(r[0], r[1]) for r in rows]


def _from_csv(src: Source, split: str, size: int) -> Decoded:
    rows = _read_csv(src.root / f"{split}.csv")
    labels, ids = relabel([lab for _, lab in rows])
    order = np.argsort(labels, kind="stable")
    paths = [src.root / "images" / rows[i][0] for i in order]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"dataset {NAME!r}: {len(missing)} images listed in {split}.csv are missing "
            f"(e.g. {missing[0]}); re-extract the images/ folder"
        )
    x = decode_images(paths, "RGB", size)  # type: ignore[arg-type]
    return split, x, labels[order], [str(i) for i in ids]


def _from_arrays(images: Any, labels: np.ndarray, ids: list, split: str, size: int) -> Decoded:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(
            f"{NAME} {split}: images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}"
        )
    if len(images) != len(labels):
        raise DataError(f"{NAME} {split}: {len(images)} images but {len(labels)} labels")
    order = np.argsort(labels, kind="stable")
    x = resize_uint8(images[order], size, channels_last=True)
    return split, x, labels[order], [str(i) for i in ids]


def _labels_from_dict(d: dict, path: Path, n: int) -> tuple[np.ndarray, list]:
    """Labels from ``class_dict`` (wnid -> indices) or a label array."""
    cd = None
    for k in ("class_dict", b"class_dict"):
        if k in d:
            cd = d[k]
    if cd is not None:
        raw = np.full(n, -1, dtype=np.int64)
        wnids = sorted(str(w) for w in cd)
        by_name = {str(w): v for w, v in cd.items()}
        for c, w in enumerate(wnids):
            raw[np.asarray(by_name[w], dtype=np.int64)] = c
        if (raw < 0).any():
            raise DataError(f"file {path}: {int((raw < 0).sum())} images in no class_dict entry")
        return raw, wnids
    return relabel(np.asarray(pick(d, LABEL_KEYS, "labels or class_dict", path)).reshape(-1))


def _decode(src: Source, params: MiniParams) -> Iterator[Decoded]:
    size = params.image_size
    for s, path in zip(SPLITS, src.files[:3], strict=True):
        if src.fmt == "ravi-csv":
            yield _from_csv(src, s, size)
            continue
        if src.fmt == "npz":
            try:
                with np.load(path, allow_pickle=True) as z:
                    d = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError) as e:
                raise corrupt(path, e) from e
            if "class_dict" in d:
                d["class_dict"] = d["class_dict"].item()
        else:
            d = load_pickle(path)
        if not isinstance(d, dict):
            raise DataError(f"file {path}: expected a dict, got {type(d).__name__}")
        images = pick(d, IMAGE_KEYS, "image array", path)
        labels, ids = _labels_from_dict(d, path, len(images))
        yield _from_arrays(images, labels, ids, s, size)


SPEC = RealSpec(
    name=NAME,
    find=_find,
    decode=_decode,
    expected="train.csv/val.csv/test.csv + images/, mini-imagenet-cache-{train,val,test}.pkl, "
    "mini-imagenet-{train,val,test}.npz, or miniImageNet_category_split_*.pickle",
    how_to_get="miniImageNet cannot be downloaded automatically: rebuild it from ILSVRC-12 with "
    "https://github.com/yaoyao-liu/mini-imagenet-tools (Ravi CSVs + images/), or place the "
    "mini-imagenet-cache-*.pkl files (learn2learn/Ren et al.) in DIR and pass root=DIR.",
)


def load_mini_imagenet(params: MiniParams) -> FewShotDataset:
    return load_real(SPEC, params)
