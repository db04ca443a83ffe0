"""Writers of tiny files in each real dataset's on-disk format, for loader tests.

Every image encodes its origin so tests can check the decoded mapping exactly: channel 0 of the
top-left pixel holds the class id (in the writer's numbering), channel 0 of the pixel to its right
the image index within the class; the rest is seeded noise.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from memcomp.data.decoding import read_split_list

SPLITS = ("train", "val", "test")


def tagged_image(cls: int, idx: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, C) noise with pixel[0,0,0] = cls and pixel[0,1,0] = idx (mod 256)."""
    rng = np.random.default_rng([seed, cls, idx])
    img = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    img[0, 0, 0], img[0, 1, 0] = cls % 256, idx % 256
    return img


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ omniglot


def omniglot_layout(n_bg: tuple[int, ...], n_eval: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(set folder, alphabet, character) for alphabets with the given numbers of characters."""
    out = []
    for folder, counts in (("images_background", n_bg), ("images_evaluation", n_eval)):
        for a, n in enumerate(counts):
            for c in range(n):
                out.append((folder, f"Alphabet_{a}", f"character{c + 1:02d}"))
    return out


def omniglot_images(layout, per_char: int, size: int):
    """Yield (relative path, png bytes, class id) with class ids in sorted layout order."""
    for cid, (folder, alpha, char) in enumerate(sorted(layout)):
        for k in range(per_char):
            img = (tagged_image(cid, k, size, 1) > 127).astype(np.uint8) * 255
            img[0, 0, 0], img[0, 1, 0] = cid, k
            yield f"{folder}/{alpha}/{char}/{cid:04d}_{k + 1:02d}.png", png_bytes(img), cid


def write_omniglot_folders(root: Path, layout, per_char: int = 3, size: int = 12) -> Path:
    """torchvision layout: root/omniglot-py/images_background/alphabet/character/*.png."""
    base = root / "omniglot-py"
    for rel, data, _ in omniglot_images(layout, per_char, size):
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_omniglot_zips(root: Path, layout, per_char: int = 3, size: int = 12) -> Path:
    """root/images_background.zip and root/images_evaluation.zip."""
    root.mkdir(parents=True, exist_ok=True)
    zips = {
        s: zipfile.ZipFile(root / f"{s}.zip", "w")
        for s in ("images_background", "images_evaluation")
    }
    for rel, data, _ in omniglot_images(layout, per_char, size):
        zips[rel.split("/")[0]].writestr(rel, data)
    for z in zips.values():
        z.close()
    return root


# ------------------------------------------------------------------ CIFAR-100


def cifar_names() -> tuple[list[str], list[str]]:
    """The 100 fine and 20 coarse CIFAR-100 names (both sorted, as in the real meta file)."""
    fine = sorted(n for s in SPLITS for n in read_split_list(f"cifar_fs_{s}.txt"))
    coarse = sorted(n for s in SPLITS for n in read_split_list(f"fc100_{s}.txt"))
    return fine, coarse


def cifar_arrays(n_train: int, n_test: int) -> dict[str, dict]:
    """The train/test/meta dicts; fine class f belongs to superclass f % 20; image pixel[0,0,0]=f,
    pixel[0,1,0] = index among the class's images (train first, then test)."""
    fine_names, coarse_names = cifar_names()
    out: dict[str, dict] = {}
    for part, n, offset in (("train", n_train, 0), ("test", n_test, n_train)):
        data, fine, coarse = [], [], []
        for k in range(n):  # interleave classes like the real files
            for f in range(100):
                data.append(tagged_image(f, offset + k, 32, 3).transpose(2, 0, 1).reshape(-1))
                fine.append(f)
                coarse.append(f % 20)
        out[part] = {
            "data": np.stack(data),
            "fine_labels": fine,
            "coarse_labels": coarse,
            "filenames": [f"img{i}.png" for i in range(len(fine))],
        }
    out["meta"] = {"fine_label_names": fine_names, "coarse_label_names": coarse_names}
    return out


def write_cifar_dir(root: Path, n_train: int = 2, n_test: int = 1) -> Path:
    """root/cifar-100-python/{train,test,meta} (pickled with bytes keys like the original)."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    for part, d in cifar_arrays(n_train, n_test).items():
        with open(base / part, "wb") as f:
            pickle.dump({k.encode(): v for k, v in d.items()}, f)
    return root


def write_cifar_tgz(root: Path, n_train: int = 2, n_test: int = 1) -> Path:
    """root/cifar-100-python.tar.gz."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as tar:
        for part, d in cifar_arrays(n_train, n_test).items():
            data = pickle.dumps(d)
            info = tarfile.TarInfo(f"cifar-100-python/{part}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root


# ------------------------------------------------------------------ miniImageNet


def mini_classes(per_split: int = 5) -> dict[str, list[str]]:
    """Fake wnids per split; global class id = position in train+val+test order."""
    return {
        s: [f"n{i:08d}" for i in range(j * per_split, (j + 1) * per_split)]
        for j, s in enumerate(SPLITS)
    }


def _mini_split(wnids: list[str], per_class: int, size: int, start: int):
    imgs, labels = [], []
    for k in range(per_class):  # interleaved, as a shuffled file would be
        for c, w in enumerate(wnids):
            imgs.append(tagged_image(start + c, k, size, 3))
            labels.append(w)
    return np.stack(imgs), labels


def write_mini_csv(root: Path, per_split: int = 5, per_class: int = 4, size: int = 10) -> Path:
    """Ravi CSVs + images/ (PNG data under .jpg names, so pixels survive exactly)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    start = 0
    for s, wnids in mini_classes(per_split).items():
        imgs, labels = _mini_split(wnids, per_class, size, start)
        rows = ["filename,label"]
        for i, (img, w) in enumerate(zip(imgs, labels, strict=True)):
            name = f"{w}{i:08d}.jpg"
            (root / "images" / name).write_bytes(png_bytes(img))
            rows.append(f"{name},{w}")
        (root / f"{s}.csv").write_text("\n".join(rows) + "\n")
        start += len(wnids)
    return root


def write_mini_pkl(root: Path, per_split: int = 5, per_class: int = 4, size: int = 10) -> Path:
    """mini-imagenet-cache-{split}.pkl with image_data and class_dict."""
    root.mkdir(parents=True, exist_ok=True)
    start = 0
    for s, wnids in mini_classes(per_split).items():
        imgs, labels = _mini_split(wnids, per_class, size, start)
        cd = {w: [i for i, lab in enumerate(labels) if lab == w] for w in wnids}
        with open(root / f"mini-imagenet-cache-{s}.pkl", "wb") as f:
            pickle.dump({"image_data": imgs, "class_dict": cd}, f)
        start += len(wnids)
    return root


def write_mini_npz(root: Path, per_split: int = 5, per_class: int = 4, size: int = 10) -> Path:
    """mini-imagenet-{split}.npz with arrays images and labels (wnid strings)."""
    root.mkdir(parents=True, exist_ok=True)
    start = 0
    for s, wnids in mini_classes(per_split).items():
        imgs, labels = _mini_split(wnids, per_class, size, start)
        np.savez(root / f"mini-imagenet-{s}.npz", images=imgs, labels=np.asarray(labels))
        start += len(wnids)
    return root


# ------------------------------------------------------------------ tieredImageNet


def tiered_labels(per_split: int = 4, per_class: int = 3, n_general: int = 2):
    """Per split: (specific ids (global numbering), general ids, specific names, general names)."""
    out = {}
    for j, s in enumerate(SPLITS):
        ids = list(range(j * per_split, (j + 1) * per_split))
        spec = [i for _ in range(per_class) for i in ids]
        out[s] = {
            "label_specific": np.asarray(spec),
            "label_general": np.asarray([i % n_general + j * n_general for i in spec]),
            "label_specific_str": [f"cls{i}" for i in range(3 * per_split)],
            "label_general_str": [f"super{g}" for g in range(3 * n_general)],
        }
    return out


def write_tiered(
    root: Path, fmt: str = "png", per_split: int = 4, per_class: int = 3, size: int = 10
) -> Path:
    """{split}_images_png.pkl (fmt='png') or {split}_images.npz (fmt='npz') + {split}_labels.pkl."""
    root.mkdir(parents=True, exist_ok=True)
    counter: dict[int, int] = {}
    for s, lab in tiered_labels(per_split, per_class).items():
        imgs = []
        for c in lab["label_specific"].tolist():
            imgs.append(tagged_image(c, counter.get(c, 0), size, 3))
            counter[c] = counter.get(c, 0) + 1
        if fmt == "png":
            with open(root / f"{s}_images_png.pkl", "wb") as f:
                pickle.dump([np.frombuffer(png_bytes(im), np.uint8) for im in imgs], f)
        else:
            np.savez(root / f"{s}_images.npz", images=np.stack(imgs))
        with open(root / f"{s}_labels.pkl", "wb") as f:
            pickle.dump(lab, f)
    return root


# ------------------------------------------------------------------ MetaOptNet pickles


def write_metaoptnet_cifar_fs(root: Path, per_class: int = 2) -> Path:
    """CIFAR_FS_{split}.pickle with data (N, 32, 32, 3) and CIFAR-100 fine label ids."""
    root.mkdir(parents=True, exist_ok=True)
    fine, _ = cifar_names()
    for s in SPLITS:
        ids = [fine.index(n) for n in read_split_list(f"cifar_fs_{s}.txt")]
        labels = [i for _ in range(per_class) for i in ids]
        data = np.stack([tagged_image(i, k, 32, 3) for k in range(per_class) for i in ids])
        with open(root / f"CIFAR_FS_{s}.pickle", "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f, protocol=2)
    return root


def write_metaoptnet_mini(
    root: Path, per_split: int = 5, per_class: int = 4, size: int = 10
) -> Path:
    """miniImageNet_category_split_{train_phase_train,val,test}.pickle (global label ids)."""
    root.mkdir(parents=True, exist_ok=True)
    names = {"train": "train_phase_train", "val": "val", "test": "test"}
    for j, s in enumerate(SPLITS):
        ids = list(range(j * per_split, (j + 1) * per_split))
        labels = [i for _ in range(per_class) for i in ids]
        data = np.stack([tagged_image(i, k, size, 3) for k in range(per_class) for i in ids])
        with open(root / f"miniImageNet_category_split_{names[s]}.pickle", "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f, protocol=2)
    return root
