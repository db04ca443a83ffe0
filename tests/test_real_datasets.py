"""Real benchmark loaders on tiny files written in each on-disk format (tests/data_formats.py)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import data_formats as df  # tests/ is on sys.path (pytest rootdir-less test module)
import numpy as np
import pytest
import torch

import memcomp.data.tieredimagenet  # noqa: F401  (registers the loader)
from memcomp.data import EpisodeSampler, load_dataset, miniimagenet, omniglot, status
from memcomp.data.cache import channel_stats
from memcomp.data.decoding import read_split_list
from memcomp.data.params import Standard
from memcomp.data.status import dataset_status, prepare_dataset
from memcomp.errors import DataError

LAYOUT = df.omniglot_layout((3, 3), (3,))  # 9 characters -> 7/1/1


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMCOMP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEMCOMP_DATA", str(tmp_path / "data"))


def tag(split, i: int) -> tuple[int, int]:
    """(class id, image index) written into image ``i`` of a split by tests/data_formats.py."""
    img = split.images[i]
    return int(img[0, 0, 0]), int(img[0, 0, 1])


def no_tmp_left(tmp_path: Path) -> bool:
    decoded = tmp_path / "cache" / "decoded"
    return not [p for p in decoded.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ omniglot


def test_omniglot_split_counts_are_vinyals() -> None:
    assert omniglot.split_counts(1623) == (1200, 211, 212)
    assert omniglot.split_counts(9) == (7, 1, 1)


def test_omniglot_folders_and_zip_decode_identically(tmp_path: Path) -> None:
    df.write_omniglot_folders(tmp_path / "a", LAYOUT, size=12)
    df.write_omniglot_zips(tmp_path / "b", LAYOUT, size=12)
    a = load_dataset("omniglot", {"root": tmp_path / "a", "strict": False, "image_size": 12})
    b = load_dataset("omniglot", {"root": tmp_path / "b", "strict": False, "image_size": 12})
    assert (a.manifest["format"], b.manifest["format"]) == ("folders", "zip")
    assert a.manifest["checksum"] == b.manifest["checksum"]
    tr = a.split("train")
    assert tr.class_names[:4] == [
        "background/Alphabet_0/character01",
        "background/Alphabet_0/character02",
        "background/Alphabet_0/character03",
        "background/Alphabet_1/character01",
    ]
    assert a.split("test").class_names == ["evaluation/Alphabet_0/character03"]
    assert tr.images.shape == (21, 1, 12, 12) and tr.images.dtype == torch.uint8
    # class id c of the writer's sorted order == label c in train, 7 in val, 8 in test
    for s, offset in (("train", 0), ("val", 7), ("test", 8)):
        sp = a.split(s)
        for i in range(len(sp.labels)):
            assert tag(sp, i)[0] == int(sp.labels[i]) + offset
    assert a.manifest["counts"]["val"] == {"classes": 1, "images": 3}
    assert no_tmp_left(tmp_path)


def test_omniglot_resize_default_28_and_rotations(tmp_path: Path) -> None:
    df.write_omniglot_zips(tmp_path, LAYOUT, size=12)
    base = load_dataset("omniglot", {"root": tmp_path, "strict": False, "normalize": False})
    assert base.split("train").image_shape == (1, 28, 28) and base.mean is None
    rot = load_dataset("omniglot", {"root": tmp_path, "strict": False, "rotations": True})
    assert [rot.split(s).n_classes for s in ("train", "val", "test")] == [28, 4, 4]
    assert rot.split("train").class_names[:2] == [
        "background/Alphabet_0/character01/rot0",
        "background/Alphabet_0/character01/rot90",
    ]
    r, b = rot.split("train"), base.split("train")
    for k in range(4):  # class 4c+k holds base class c rotated by k*90 degrees
        got = r.images[r.labels == 4 * 2 + k]
        want = torch.rot90(b.images[b.labels == 2], k, dims=(2, 3))
        assert torch.equal(got, want)


def test_omniglot_strict_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df.write_omniglot_zips(tmp_path, LAYOUT, per_char=3)
    with pytest.raises(DataError, match=r"split 'train' has 7 classes, expected 1200"):
        load_dataset("omniglot", {"root": tmp_path, "image_size": 12})
    # with a matching standard the strict load succeeds
    spec = dataclasses.replace(
        omniglot.SPEC, standard=lambda p: Standard({"train": 7, "val": 1, "test": 1}, 3)
    )
    monkeypatch.setattr(omniglot, "SPEC", spec)
    ok = load_dataset("omniglot", {"root": tmp_path, "image_size": 12})
    assert ok.manifest["counts"]["train"]["classes"] == 7


def test_omniglot_class_with_too_few_images(tmp_path: Path) -> None:
    df.write_omniglot_folders(tmp_path, LAYOUT, per_char=3)
    victim = sorted((tmp_path / "omniglot-py" / "images_evaluation").rglob("*.png"))[-1]
    victim.unlink()
    with pytest.raises(
        DataError, match=r"character03' of split 'test' has 2 images, fewer than min"
    ):
        load_dataset("omniglot", {"root": tmp_path, "strict": False, "min_per_class": 3})


def test_omniglot_corrupt_png_and_zip(tmp_path: Path) -> None:
    df.write_omniglot_folders(tmp_path / "f", LAYOUT)
    bad = next((tmp_path / "f").rglob("*.png"))
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="corrupt image"):
        load_dataset("omniglot", {"root": tmp_path / "f", "strict": False})
    df.write_omniglot_zips(tmp_path / "z", LAYOUT)
    z = tmp_path / "z" / "images_evaluation.zip"
    z.write_bytes(z.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset("omniglot", {"root": tmp_path / "z", "strict": False})
    assert no_tmp_left(tmp_path)


def test_missing_dataset_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("omniglot", {})
    msg = str(e.value)
    assert "'omniglot' not found" in msg and str(tmp_path / "data" / "omniglot") in msg
    assert "images_background.zip" in msg
    assert "memcomp data prepare omniglot --root DIR --download" in msg
    with pytest.raises(DataError, match=r"cifar-100-python.tar.gz.*data prepare cifar-fs"):
        load_dataset("cifar-fs", {"root": tmp_path / "nowhere"})
    with pytest.raises(DataError, match="mini-imagenet-tools"):
        load_dataset("mini-imagenet", {})


# ------------------------------------------------------------------ CIFAR-FS / FC100


def test_bundled_split_lists() -> None:
    fine, coarse = df.cifar_names()
    assert len(fine) == 100 and len(coarse) == 20
    fs = [read_split_list(f"cifar_fs_{s}.txt") for s in ("train", "val", "test")]
    assert [len(x) for x in fs] == [64, 16, 20] and len(set().union(*fs)) == 100
    assert {"whale", "rocket", "woman"} <= set(fs[2]) and {"otter", "tractor"} <= set(fs[1])
    fc = [read_split_list(f"fc100_{s}.txt") for s in ("train", "val", "test")]
    assert [len(x) for x in fc] == [12, 4, 4] and len(set().union(*fc)) == 20
    assert set(fc[2]) == {"aquatic_mammals", "insects", "medium_mammals", "people"}


@pytest.mark.parametrize("writer", [df.write_cifar_dir, df.write_cifar_tgz])
def test_cifar_fs(tmp_path: Path, writer) -> None:
    writer(tmp_path, n_train=2, n_test=1)
    d = load_dataset("cifar-fs", {"root": tmp_path, "strict": False})
    fine, _ = df.cifar_names()
    assert [d.split(s).n_classes for s in ("train", "val", "test")] == [64, 16, 20]
    val = d.split("val")
    assert val.class_names == read_split_list("cifar_fs_val.txt")
    assert val.images.shape == (48, 3, 32, 32)
    for i in range(len(val.labels)):
        cls, idx = tag(val, i)
        assert fine[cls] == val.class_names[int(val.labels[i])]
    # train images of a class come first, then its test image: indices 0, 1, 2
    first = (val.labels == 0).nonzero().flatten()
    assert [tag(val, int(i))[1] for i in first] == [0, 1, 2]
    assert d.manifest["split_source"].startswith("bundled splits/cifar_fs")


def test_cifar_dir_and_tgz_same_checksum(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path / "a")
    df.write_cifar_tgz(tmp_path / "b")
    a = load_dataset("fc100", {"root": tmp_path / "a", "strict": False})
    b = load_dataset("fc100", {"root": tmp_path / "b", "strict": False})
    assert a.manifest["checksum"] == b.manifest["checksum"]
    assert (a.manifest["format"], b.manifest["format"]) == (
        "cifar-100-python",
        "cifar-100-python.tar.gz",
    )


def test_fc100_superclass_split(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path)
    d = load_dataset("fc100", {"root": tmp_path, "strict": False})
    fine, coarse = df.cifar_names()
    for s, n in (("train", 60), ("val", 20), ("test", 20)):
        sp = d.split(s)
        supers = set(read_split_list(f"fc100_{s}.txt"))
        assert sp.n_classes == n
        for i in range(0, len(sp.labels), 7):
            cls, _ = tag(sp, i)
            name = sp.class_names[int(sp.labels[i])]
            assert name == f"{coarse[cls % 20]}/{fine[cls]}" and coarse[cls % 20] in supers


def test_cifar_default_root_and_resize_and_stats(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path / "data" / "cifar-100")  # shared default folder
    d = load_dataset("cifar-fs", {"strict": False, "image_size": 16})
    tr = d.split("train")
    assert tr.image_shape == (3, 16, 16)
    x = tr.images.double() / 255
    mean = x.mean(dim=(0, 2, 3))
    std = ((x - mean.view(1, 3, 1, 1)) ** 2).mean(dim=(0, 2, 3)).sqrt()
    assert torch.allclose(torch.tensor(d.mean, dtype=torch.float64), mean, atol=1e-12)
    assert torch.allclose(torch.tensor(d.std, dtype=torch.float64), std, atol=1e-12)
    m, s = channel_stats(np.zeros((2, 1, 3, 3), np.uint8))
    assert m == (0.0,) and s == (1.0,)  # constant images: std 1, no division by zero


def test_cifar_strict_rejects_small_classes(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path)
    with pytest.raises(DataError, match="has 3 images, expected 600"):
        load_dataset("cifar-fs", {"root": tmp_path})


def test_truncated_cifar_pickle(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path)
    f = tmp_path / "cifar-100-python" / "train"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"cifar-100-python/train is truncated or corrupt"):
        load_dataset("cifar-fs", {"root": tmp_path, "strict": False})


# ------------------------------------------------------------------ miniImageNet


@pytest.mark.parametrize(
    ("writer", "fmt"),
    [(df.write_mini_csv, "ravi-csv"), (df.write_mini_pkl, "cache-pkl"), (df.write_mini_npz, "npz")],
)
def test_mini_formats(tmp_path: Path, writer, fmt: str) -> None:
    writer(tmp_path, per_split=5, per_class=4, size=10)
    d = load_dataset("mini-imagenet", {"root": tmp_path, "strict": False, "image_size": 10})
    assert d.manifest["format"] == fmt
    wnids = df.mini_classes(5)
    for j, s in enumerate(("train", "val", "test")):
        sp = d.split(s)
        assert sp.class_names == wnids[s] and sp.image_shape == (3, 10, 10)
        for i in range(len(sp.labels)):
            cls, _ = tag(sp, i)
            assert cls == 5 * j + int(sp.labels[i])
        assert sorted(tag(sp, int(i))[1] for i in (sp.labels == 2).nonzero()) == [0, 1, 2, 3]


def test_mini_formats_agree_and_resize(tmp_path: Path) -> None:
    sums = []
    for w in (df.write_mini_pkl, df.write_mini_npz, df.write_mini_csv):
        w(tmp_path / w.__name__)
        d = load_dataset("mini-imagenet", {"root": tmp_path / w.__name__, "strict": False})
        assert d.split("test").image_shape == (3, 84, 84)  # resized from 10x10
        sums.append(d.manifest["checksum"])
    assert sums[0] == sums[1]  # arrays are resized identically (files go through PIL Lanczos)


def test_metaoptnet_pickles(tmp_path: Path) -> None:
    df.write_metaoptnet_cifar_fs(tmp_path / "c")
    d = load_dataset("cifar-fs", {"root": tmp_path / "c", "strict": False})
    assert d.manifest["format"] == "metaoptnet-pickle"
    test = d.split("test")
    assert test.class_names == sorted(read_split_list("cifar_fs_test.txt"))
    fine, _ = df.cifar_names()
    for i in range(len(test.labels)):
        assert fine[tag(test, i)[0]] == test.class_names[int(test.labels[i])]
    df.write_metaoptnet_mini(tmp_path / "m")
    m = load_dataset("mini-imagenet", {"root": tmp_path / "m", "strict": False, "image_size": 10})
    assert m.manifest["format"] == "metaoptnet-pickle"
    assert m.split("val").class_names == ["5", "6", "7", "8", "9"]
    assert all(tag(m.split("val"), i)[0] == 5 + int(m.split("val").labels[i]) for i in range(20))


def test_mini_truncated_pickle_and_missing_image(tmp_path: Path) -> None:
    df.write_mini_pkl(tmp_path / "p")
    f = tmp_path / "p" / "mini-imagenet-cache-val.pkl"
    f.write_bytes(f.read_bytes()[:-50])
    with pytest.raises(DataError, match="mini-imagenet-cache-val.pkl is truncated or corrupt"):
        load_dataset("mini-imagenet", {"root": tmp_path / "p", "strict": False})
    df.write_mini_csv(tmp_path / "c")
    next((tmp_path / "c" / "images").iterdir()).unlink()
    with pytest.raises(DataError, match="missing"):
        load_dataset("mini-imagenet", {"root": tmp_path / "c", "strict": False})
    assert no_tmp_left(tmp_path)


def test_split_with_too_few_classes_for_ways(tmp_path: Path) -> None:
    df.write_mini_pkl(tmp_path, per_split=3, per_class=4)
    d = load_dataset("mini-imagenet", {"root": tmp_path, "strict": False, "image_size": 10})
    with pytest.raises(DataError, match="has 3 classes, fewer than ways=5"):
        EpisodeSampler(d, "train", ways=5, shots=1, queries=1)
    with pytest.raises(DataError, match=r"split 'train' has 3 classes, expected 64"):
        load_dataset("mini-imagenet", {"root": tmp_path, "image_size": 10})


# ------------------------------------------------------------------ tieredImageNet


@pytest.mark.parametrize("fmt", ["png", "npz"])
def test_tiered(tmp_path: Path, fmt: str) -> None:
    df.write_tiered(tmp_path, fmt, per_split=4, per_class=3, size=10)
    d = load_dataset("tiered-imagenet", {"root": tmp_path, "strict": False, "image_size": 10})
    assert d.manifest["format"] == {"png": "png-pkl", "npz": "npz"}[fmt]
    val = d.split("val")
    assert val.class_names == ["super2/cls4", "super3/cls5", "super2/cls6", "super3/cls7"]
    for i in range(len(val.labels)):
        assert tag(val, i)[0] == 4 + int(val.labels[i])
    assert no_tmp_left(tmp_path)  # scratch memmaps removed


def test_tiered_formats_agree_and_label_mismatch(tmp_path: Path) -> None:
    df.write_tiered(tmp_path / "a", "png")
    df.write_tiered(tmp_path / "b", "npz")
    a = load_dataset("tiered-imagenet", {"root": tmp_path / "a", "strict": False, "image_size": 10})
    b = load_dataset("tiered-imagenet", {"root": tmp_path / "b", "strict": False, "image_size": 10})
    assert a.manifest["checksum"] == b.manifest["checksum"]
    import pickle

    lab = df.tiered_labels()["test"]
    lab["label_specific"] = lab["label_specific"][:-1]
    (tmp_path / "b" / "test_labels.pkl").write_bytes(pickle.dumps(lab))
    with pytest.raises(DataError, match="12 images in test_images.npz but 11 labels"):
        load_dataset("tiered-imagenet", {"root": tmp_path / "b", "strict": False})


# ------------------------------------------------------------------ cache, sampling, status


def count_mini_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry each time mini-imagenet's source is decoded (not cached)."""
    calls: list[int] = []
    real_decode = miniimagenet.SPEC.decode

    def counting(src, p):
        calls.append(1)
        return real_decode(src, p)

    monkeypatch.setattr(
        miniimagenet, "SPEC", dataclasses.replace(miniimagenet.SPEC, decode=counting)
    )
    return calls


def test_cache_reused_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df.write_mini_pkl(tmp_path / "m")
    params = {"root": tmp_path / "m", "strict": False, "image_size": 10}
    first = load_dataset("mini-imagenet", params)
    calls = count_mini_decodes(monkeypatch)
    again = load_dataset("mini-imagenet", params)
    assert calls == [] and again.manifest["cache"] == first.manifest["cache"]
    assert torch.equal(again.split("val").images, first.split("val").images)
    f = tmp_path / "m" / "mini-imagenet-cache-test.pkl"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    third = load_dataset("mini-imagenet", params)
    assert calls == [1] and third.manifest["cache"] != first.manifest["cache"]
    assert Path(first.manifest["cache"]).parent == tmp_path / "cache" / "decoded"


@pytest.mark.parametrize(
    "damage",
    [
        "meta-garbage",
        "meta-truncated",
        "meta-missing",
        "meta-not-a-dict",
        "meta-wrong-count",
        "npy-truncated",
        "npy-missing",
        "npy-empty",
    ],  # fmt: skip
)
def test_damaged_cache_entry_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A decoded cache entry damaged on disk (killed writer, full disk, a stray edit) is decoded
    again from the source, to the same arrays, leaving no temporary folder behind."""
    df.write_mini_pkl(tmp_path / "m")
    params = {"root": tmp_path / "m", "strict": False, "image_size": 10}
    first = load_dataset("mini-imagenet", params)
    entry = Path(first.manifest["cache"])
    meta, npy = entry / "meta.json", entry / "val_images.npy"
    if damage == "meta-garbage":
        meta.write_text("{not json")
    elif damage == "meta-truncated":
        meta.write_bytes(meta.read_bytes()[:40])
    elif damage == "meta-missing":
        meta.unlink()
    elif damage == "meta-not-a-dict":
        meta.write_text("[]")
    elif damage == "meta-wrong-count":
        data = json.loads(meta.read_text())
        data["splits"]["val"]["n_images"] += 1
        meta.write_text(json.dumps(data))
    elif damage == "npy-truncated":
        npy.write_bytes(npy.read_bytes()[:200])
    elif damage == "npy-missing":
        npy.unlink()
    else:
        npy.write_bytes(b"")
    calls = count_mini_decodes(monkeypatch)
    again = load_dataset("mini-imagenet", params)
    assert calls == [1]  # decoded again, not read from the damaged entry
    assert (
        again.manifest["cache"] == str(entry)
        and again.manifest["checksum"] == first.manifest["checksum"]
    )
    for s in ("train", "val", "test"):
        assert torch.equal(again.split(s).images, first.split(s).images)
    assert no_tmp_left(tmp_path)
    load_dataset("mini-imagenet", params)
    assert calls == [1]  # and the rebuilt entry is used from then on


def test_episodes_from_real_loader(tmp_path: Path) -> None:
    df.write_cifar_dir(tmp_path, n_train=3, n_test=1)
    d = load_dataset("cifar-fs", {"root": tmp_path, "strict": False})
    task = EpisodeSampler(d, "test", ways=5, shots=1, queries=3).sample(
        torch.Generator().manual_seed(0)
    )
    assert task.xs.shape == (5, 3, 32, 32) and task.xq.shape == (15, 3, 32, 32)
    assert abs(float(task.xq.mean())) < 1.0  # normalised by train mean/std


def test_status_and_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    df.write_cifar_dir(data / "cifar-100")
    df.write_mini_pkl(data / "mini-imagenet")
    st = {e["name"]: e for e in dataset_status(data)}
    # registry order (sorted names), as `memcomp list datasets` shows them
    assert list(st) == ["cifar-fs", "fc100", "mini-imagenet", "omniglot", "tiered-imagenet"]
    assert not st["omniglot"]["present"] and "data prepare omniglot" in st["omniglot"]["how_to_get"]
    assert st["cifar-fs"]["present"] and st["cifar-fs"]["format"] == "cifar-100-python"
    assert st["cifar-fs"]["source_md5_ok"] is False  # fake files differ from the real archive
    assert st["mini-imagenet"]["prepared"] is False and st["mini-imagenet"]["checksum_ok"] is None

    out = prepare_dataset("mini-imagenet", data / "mini-imagenet")
    assert out["prepared"] and out["images"] == {"train": 20, "val": 20, "test": 20}
    assert out["standard"] is False and "expected 64" in out["problem"]
    st = {e["name"]: e for e in dataset_status(data)}
    assert st["mini-imagenet"]["cache_ok"] is True and st["mini-imagenet"]["checksum_ok"] is True
    assert st["mini-imagenet"]["checksum"] == out["checksum"]
    cache = Path(out["cache"])
    arr = np.load(cache / "val_images.npy")
    arr[0, 0, 0, 0] ^= 1
    np.save(cache / "val_images.npy", arr)
    st = {e["name"]: e for e in dataset_status(data)}
    assert st["mini-imagenet"]["cache_ok"] is False

    monkeypatch.setitem(
        status.CIFAR100_MD5, "meta", status._md5(data / "cifar-100" / "cifar-100-python" / "meta")
    )
    for f in ("train", "test"):
        path = data / "cifar-100" / "cifar-100-python" / f
        monkeypatch.setitem(status.CIFAR100_MD5, f, status._md5(path))
    st = {e["name"]: e for e in dataset_status(data, verify=False)}
    assert st["fc100"]["source_md5_ok"] is True and st["fc100"]["cache_ok"] is None

    with pytest.raises(DataError, match="cannot be downloaded"):
        prepare_dataset("mini-imagenet", tmp_path / "x", download=True)
    with pytest.raises(DataError, match="not found"):
        prepare_dataset("tiered-imagenet", tmp_path / "x")
