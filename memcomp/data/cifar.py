"""CIFAR-FS (Bertinetto et al. 2019, 64/16/20 classes) and FC100 (Oreshkin et al. 2018, 12/4/4
superclasses = 60/20/20 classes), both built from CIFAR-100.

Sources, searched in ``root`` (default: ``data_root()/<name>``, then ``data_root()/cifar-100``):
the CIFAR-100 python archive as torchvision downloads it, extracted (``cifar-100-python/`` with the
``train``, ``test`` and ``meta`` pickles, or those pickles directly in ``root``) or not
(``cifar-100-python.tar.gz``); or the MetaOptNet pickles ``CIFAR_FS_{train,val,test}.pickle`` /
``FC100_{train,val,test}.pickle`` (keys ``data`` N x 32 x 32 x 3 and ``labels``).

The split class lists are bundled in ``memcomp/data/splits`` (``cifar_fs_*.txt`` fine names,
``fc100_*.txt`` superclass names). Train and test images of each class are merged (600 per class),
train images first; classes keep the order of the split file (FC100: superclass order, then fine
names sorted). Images are 32x32 RGB, resized (bilinear, antialiased) if ``image_size`` differs.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memcomp.data.base import SPLITS, FewShotDataset
from memcomp.data.cache import Decoded
from memcomp.data.decoding import corrupt, load_pickle, pick, read_split_list, relabel, resize_uint8
from memcomp.data.params import CifarParams
from memcomp.data.realdata import RealSpec, Source, load_real
from memcomp.errors import DataError

ARCHIVE_DIR = "cifar-100-python"
ARCHIVE = "cifar-100-python.tar.gz"
PICKLES = ("train", "test", "meta")
MOP_PREFIX = {"cifar-fs": "CIFAR_FS", "fc100": "FC100"}


def _finder(name: str):
    def find(root: Path) -> Source | None:
        split_src = f"bundled splits/{name.replace('-', '_')}_*.txt"
        for base in (root / ARCHIVE_DIR, root):
            files = tuple(base / p for p in PICKLES)
            if all(f.is_file() for f in files):
                return Source(ARCHIVE_DIR, base, files, split_src)
        if (root / ARCHIVE).is_file():
            return Source(ARCHIVE, root, (root / ARCHIVE,), split_src)
        mop = tuple(root / f"{MOP_PREFIX[name]}_{s}.pickle" for s in SPLITS)
        if all(f.is_file() for f in mop):
            return Source("metaoptnet-pickle", root, mop, "MetaOptNet pickles")
        return None

    return find


def _read_archive(src: Source) -> dict[str, Any]:
    """The train, test and meta dicts of the CIFAR-100 python archive."""
    if src.fmt == ARCHIVE_DIR:
        return {p: load_pickle(src.root / p) for p in PICKLES}
    import io
    import pickle

    out = {}
    path = src.files[0]
    try:
        with tarfile.open(path, "r:gz") as tar:
            for p in PICKLES:
                f = tar.extractfile(f"{ARCHIVE_DIR}/{p}")
                if f is None:
                    raise KeyError(p)
                out[p] = pickle.load(io.BytesIO(f.read()), encoding="latin1")
    except KeyError as e:
        raise DataError(f"file {path} lacks {ARCHIVE_DIR}/{e.args[0]}; re-download it") from e
    except (tarfile.TarError, EOFError, OSError, pickle.UnpicklingError, ValueError) as e:
        raise corrupt(path, e) from e
    return out


def _all_images(src: Source) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """(images N x 3 x 32 x 32, fine, coarse, fine names, coarse names), train then test."""
    d = _read_archive(src)
    xs, fines, coarses = [], [], []
    for p in ("train", "test"):
        path = src.root / p
        data = np.asarray(pick(d[p], ["data"], "image data", path), dtype=np.uint8)
        fine = np.asarray(pick(d[p], ["fine_labels"], "fine labels", path), dtype=np.int64)
        coarse = np.asarray(pick(d[p], ["coarse_labels"], "coarse labels", path), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or not len(data) == len(fine) == len(coarse):
            raise DataError(f"file {path}: unexpected data shape {data.shape}; re-download it")
        xs.append(data.reshape(-1, 3, 32, 32))
        fines.append(fine)
        coarses.append(coarse)
    meta = src.root / "meta"
    fine_names = [str(n) for n in pick(d["meta"], ["fine_label_names"], "fine names", meta)]
    coarse_names = [str(n) for n in pick(d["meta"], ["coarse_label_names"], "coarse names", meta)]
    return (
        np.concatenate(xs),
        np.concatenate(fines),
        np.concatenate(coarses),
        fine_names,
        coarse_names,
    )


def _split_classes(
    name: str, fine: np.ndarray, coarse: np.ndarray, fine_names: list[str], coarse_names: list[str]
) -> dict[str, list[tuple[int, str]]]:
    """Per split: [(fine label id, class name)] in the bundled split's order."""
    key = name.replace("-", "_")
    out: dict[str, list[tuple[int, str]]] = {}
    for s in SPLITS:
        wanted = read_split_list(f"{key}_{s}.txt")
        if name == "cifar-fs":
            missing = [w for w in wanted if w not in fine_names]
            if missing:
                raise DataError(f"CIFAR-100 meta lacks CIFAR-FS classes {missing}; re-download it")
            out[s] = [(fine_names.index(w), w) for w in wanted]
        else:
            missing = [w for w in wanted if w not in coarse_names]
            if missing:
                raise DataError(f"CIFAR-100 meta lacks FC100 superclasses {missing}; re-download")
            classes = []
            for w in wanted:
                ids = sorted(set(fine[coarse == coarse_names.index(w)].tolist()))
                classes += sorted(((i, f"{w}/{fine_names[i]}") for i in ids), key=lambda t: t[1])
            out[s] = classes
    return out


def _decoder(name: str):
    def decode(src: Source, params: CifarParams) -> Iterator[Decoded]:
        if src.fmt == "metaoptnet-pickle":
            yield from _decode_metaoptnet(src, params)
            return
        images, fine, coarse, fine_names, coarse_names = _all_images(src)
        for s, classes in _split_classes(name, fine, coarse, fine_names, coarse_names).items():
            idx = [np.flatnonzero(fine == i) for i, _ in classes]
            labels = np.concatenate([np.full(len(ix), c) for c, ix in enumerate(idx)])
            x = images[np.concatenate(idx)] if idx else images[:0]
            yield (
                s,
                resize_uint8(x, params.image_size),
                labels.astype(np.int64),
                [n for _, n in classes],
            )

    return decode


def _decode_metaoptnet(src: Source, params: CifarParams) -> Iterator[Decoded]:
    # CIFAR-100 fine label ids follow the sorted class names
    fine_names = sorted(n for s in SPLITS for n in read_split_list(f"cifar_fs_{s}.txt"))
    for s, path in zip(SPLITS, src.files, strict=True):
        d = load_pickle(path)
        data = np.asarray(pick(d, ["data"], "image data", path), dtype=np.uint8)
        labels, ids = relabel(pick(d, ["labels"], "labels", path))
        if data.ndim != 4 or data.shape[-1] != 3 or len(data) != len(labels):
            raise DataError(f"file {path}: unexpected data shape {data.shape}")
        order = np.argsort(labels, kind="stable")
        names = [fine_names[i] if 0 <= int(i) < 100 else str(i) for i in ids]
        x = resize_uint8(data[order], params.image_size, channels_last=True)
        yield s, x, labels[order], names


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR100

    CIFAR100(str(root), train=True, download=True)


def _spec(name: str, paper: str) -> RealSpec:
    return RealSpec(
        name=name,
        find=_finder(name),
        decode=_decoder(name),
        expected=f"{ARCHIVE_DIR}/ (train, test, meta pickles), {ARCHIVE}, or "
        f"{MOP_PREFIX[name]}_{{train,val,test}}.pickle",
        how_to_get=f"Get CIFAR-100 with `memcomp data prepare {name} --root DIR --download` "
        f"(torchvision), or download {ARCHIVE} from https://www.cs.toronto.edu/~kriz/cifar.html "
        f"into DIR. Split: {paper}.",
        subdirs=("cifar-100",),
        download=_download,
    )


CIFAR_FS = _spec("cifar-fs", "Bertinetto et al. 2019")
FC100 = _spec("fc100", "Oreshkin et al. 2018 superclasses")


def load_cifar_fs(params: CifarParams) -> FewShotDataset:
    return load_real(CIFAR_FS, params)


def load_fc100(params: CifarParams) -> FewShotDataset:
    return load_real(FC100, params)
