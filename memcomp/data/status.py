"""Status and preparation of the real benchmark datasets (``memcomp data status|prepare``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from memcomp.data import DATASETS
from memcomp.data.cache import SPLITS, read_cache, verify_cache
from memcomp.data.cifar import ARCHIVE, ARCHIVE_DIR
from memcomp.data.params import RealParams
from memcomp.data.realdata import (
    RealSpec,
    Source,
    cache_path,
    dataset_roots,
    ensure_cache,
    find_source,
    load_real,
)
from memcomp.errors import DataError, UnknownNameError


def real_datasets() -> dict[str, tuple[RealSpec, type[RealParams]]]:
    """Every registered dataset whose params are :class:`RealParams`: name -> (spec, params).

    The datasets registry is the one list of datasets; a real benchmark is one whose params
    model names its ``RealSpec`` (built-ins and plugins alike).
    """
    out = {}
    for entry in DATASETS:
        if isinstance(entry.params, type) and issubclass(entry.params, RealParams):
            if entry.params.SPEC:
                out[entry.name] = (entry.params.spec(), entry.params)
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Published md5 sums of the original files (as listed by torchvision's dataset classes).
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
    ARCHIVE: "eb9058c3a382ffc7106e4002c42a8d85",
}
OMNIGLOT_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}


def source_checksums_ok(src: Source) -> bool | None:
    """Compare source files with their published md5s (None: no reference known)."""
    table = {ARCHIVE_DIR: CIFAR100_MD5, ARCHIVE: CIFAR100_MD5, "zip": OMNIGLOT_MD5}
    refs = table.get(src.fmt, {})
    files = [f for f in src.files if f.name in refs]
    if not files:
        return None
    return all(_md5(f) == refs[f.name] for f in files)


def _spec(name: str) -> tuple[RealSpec, type[RealParams]]:
    real = real_datasets()
    if name not in real:
        raise UnknownNameError(f"unknown real dataset {name!r} (valid: {', '.join(real)})")
    return real[name]


def _entry(name: str, src: Source | None, verify: bool) -> dict[str, Any]:
    spec, params_cls = _spec(name)
    out: dict[str, Any] = {"name": name, "present": src is not None}
    if src is None:
        out.update(path=None, format=None, expected=spec.expected, how_to_get=spec.how_to_get)
        out.update(split_source=None, prepared=False, cache=None, classes=None, images=None)
        out.update(checksum=None, source_md5_ok=None, cache_ok=None, checksum_ok=None)
        return out
    out.update(path=str(src.root), format=src.fmt, split_source=src.split_source)
    out.update(expected=spec.expected, how_to_get=spec.how_to_get)
    cache = cache_path(spec, src, params_cls(root=src.root))
    got = read_cache(cache)
    out["prepared"] = got is not None
    out["cache"] = str(cache) if got is not None else None
    if got is not None:
        meta, arrays = got
        out["classes"] = {s: len(meta["splits"][s]["class_names"]) for s in SPLITS}
        out["images"] = {s: int(len(arrays[s][1])) for s in SPLITS}
        out["checksum"] = meta.get("sha256")
    else:
        out.update(classes=None, images=None, checksum=None)
    out["source_md5_ok"] = source_checksums_ok(src)
    out["cache_ok"] = verify_cache(cache) if verify else None
    known = [c for c in (out["source_md5_ok"], out["cache_ok"]) if c is not None]
    out["checksum_ok"] = all(known) if known else None
    return out


def dataset_status(root: Path | None = None, verify: bool = True) -> list[dict[str, Any]]:
    """One entry per real dataset: present?, path, format, counts, checksum and whether it is ok.

    ``root`` is the data folder holding one folder per dataset (default data_root()); a dataset's
    files placed directly in ``root`` are found too. ``checksum_ok`` combines the source files'
    published md5 (``source_md5_ok``: CIFAR-100, Omniglot zips) and a re-hash of the decoded
    cache (``cache_ok``, when ``verify``); None when neither can be checked.
    """
    out = []
    for name, (spec, _) in real_datasets().items():
        src = find_source(spec, None, base=root)
        if src is None and root is not None:
            src = find_source(spec, Path(root))
        out.append(_entry(name, src, verify))
    return out


def prepare_dataset(name: str, root: Path | None = None, download: bool = False) -> dict[str, Any]:
    """Decode dataset ``name`` from ``root`` (its folder; default data_root()/<name>) into the
    cache, downloading CIFAR-100 or Omniglot first with torchvision when ``download`` and missing.

    Returns the dataset's status entry plus ``standard`` (whether the class/image counts match the
    benchmark) and ``problem`` (the reason when they do not).
    """
    spec, params_cls = _spec(name)
    kwargs: dict[str, Any] = {"root": root, "strict": False}
    if "download" in params_cls.model_fields:
        kwargs["download"] = download
    elif download:
        raise DataError(f"dataset {name!r} cannot be downloaded automatically. {spec.how_to_get}")
    params = params_cls(**kwargs)
    src, _ = ensure_cache(spec, params)
    entry = _entry(name, src, verify=False)
    try:
        load_real(spec, params.model_copy(update={"strict": True}))
        entry["standard"], entry["problem"] = True, None
    except DataError as e:
        entry["standard"], entry["problem"] = False, str(e)
    return entry


__all__ = ["real_datasets", "dataset_roots", "dataset_status", "prepare_dataset"]
