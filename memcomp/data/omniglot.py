"""Omniglot (Lake et al. 2015) with the Vinyals et al. (2016) 1,200-character training split.

Sources (searched in ``root`` and ``root/omniglot-py``, as torchvision lays them out):
the folders ``images_background/`` and ``images_evaluation/`` (``alphabet/character/*.png``), or
the original ``images_background.zip`` and ``images_evaluation.zip``.

Split rule (deterministic): characters are ordered background set first, then evaluation set,
alphabets and characters in sorted name order. The first 1,200 are the training classes; of the
remaining 423 the first 211 are validation and the last 212 test (whole evaluation alphabets, so
test alphabets are never seen in training). A subset of ``n`` characters (``strict=false``) is split
in the same order in the proportions 1200:211:212. ``rotations=true`` adds the 90/180/270-degree
rotations of every character as new classes of the same split (Santoro et al.; Vinyals et al.).
Images are grayscale, resized with Lanczos to ``image_size`` (default 28), strokes dark on white.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from memcomp.data.base import FewShotDataset
from memcomp.data.cache import Decoded
from memcomp.data.decoding import corrupt, decode_images
from memcomp.data.params import OMNIGLOT_SPLIT, OmniglotParams
from memcomp.data.realdata import RealSpec, Source, load_real
from memcomp.errors import DataError

NAME = "omniglot"
SETS = ("images_background", "images_evaluation")
SPLIT_SIZES = OMNIGLOT_SPLIT  # of 1,623 characters


def _find(root: Path) -> Source | None:
    for base in (root / "omniglot-py", root):
        if all((base / s).is_dir() for s in SETS):
            files = tuple(sorted(p for s in SETS for p in (base / s).rglob("*.png")))
            if files:
                return Source("folders", base, files, "vinyals-1200 (sorted order)")
    for base in (root / "omniglot-py", root):
        zips = tuple(base / f"{s}.zip" for s in SETS)
        if all(z.is_file() for z in zips):
            return Source("zip", base, zips, "vinyals-1200 (sorted order)")
    return None


def _characters(src: Source) -> list[tuple[str, list[tuple[str, bytes | Path]]]]:
    """(class name 'set/alphabet/character', [(file name, bytes or path)]) in split order."""
    groups: dict[tuple[int, str, str], list[tuple[str, bytes | Path]]] = {}
    if src.fmt == "folders":
        for f in src.files:
            rel = f.relative_to(src.root).parts
            if len(rel) != 4:
                continue
            groups.setdefault((SETS.index(rel[0]), rel[1], rel[2]), []).append((rel[3], f))
    else:
        for zpath in src.files:
            try:
                with zipfile.ZipFile(zpath) as z:
                    for info in z.infolist():
                        parts = info.filename.strip("/").split("/")
                        if info.is_dir() or len(parts) != 4 or not parts[3].endswith(".png"):
                            continue
                        key = (SETS.index(zpath.stem), parts[1], parts[2])
                        groups.setdefault(key, []).append((parts[3], z.read(info)))
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise corrupt(zpath, e) from e
    out = []
    for key in sorted(groups):
        out.append((f"{SETS[key[0]][7:]}/{key[1]}/{key[2]}", sorted(groups[key])))
    return out


def split_counts(n: int) -> tuple[int, int, int]:
    """Characters per split: exactly 1200/211/212 for 1,623, proportional for subsets."""
    total = sum(SPLIT_SIZES)
    n_train = round(n * SPLIT_SIZES[0] / total)
    n_val = round(n * SPLIT_SIZES[1] / total)
    if n >= 3:
        n_train, n_val = min(max(n_train, 1), n - 2), max(n_val, 1)
    return n_train, n_val, n - n_train - n_val


def _decode(src: Source, params: OmniglotParams) -> Iterator[Decoded]:
    chars = _characters(src)
    if not chars:
        raise DataError(f"dataset 'omniglot': no character images found under {src.root}")
    n_train, n_val, _ = split_counts(len(chars))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    bounds["test"] = (n_train + n_val, len(chars))
    for split, (a, b) in bounds.items():
        items, what, labels, names = [], [], [], []
        for c, (name, files) in enumerate(chars[a:b]):
            for fname, item in files:
                items.append(item)
                what.append(f"{name}/{fname}")
                labels.append(c)
            names.append(name)
        x = decode_images(items, "L", params.image_size, what)
        y = np.asarray(labels, dtype=np.int64)
        if params.rotations:
            x = np.concatenate([np.rot90(x, k, axes=(2, 3)) for k in range(4)])
            y = np.concatenate([y * 4 + k for k in range(4)])
            names = [f"{n}/rot{90 * k}" for n in names for k in range(4)]
        yield split, np.ascontiguousarray(x), y, names


def _download(root: Path) -> None:
    from torchvision.datasets import Omniglot

    for background in (True, False):
        Omniglot(str(root), background=background, download=True)


SPEC = RealSpec(
    name=NAME,
    find=_find,
    decode=_decode,
    expected="images_background/ and images_evaluation/ folders (alphabet/character/*.png) "
    "or images_background.zip and images_evaluation.zip, in the folder or its omniglot-py/",
    how_to_get="Get them with `memcomp data prepare omniglot --root DIR --download` "
    "(torchvision), or download the two zips from "
    "https://github.com/brendenlake/omniglot/tree/master/python into DIR.",
    decode_key=lambda p: {"image_size": p.image_size, "rotations": p.rotations},
    download=_download,
)


def load_omniglot(params: OmniglotParams) -> FewShotDataset:
    return load_real(SPEC, params)
