"""The ``synthetic`` dataset: shapes, determinism, weak learnability, statistics."""

from __future__ import annotations

import pydantic
import pytest
import torch

from memcomp.data import DATASETS, EpisodeSampler, load_dataset
from memcomp.data.base import SPLITS
from memcomp.data.cache import channel_stats, splits_checksum


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Element-wise generation is memory-bound; extra threads only contend on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


SMALL = {
    "image_size": 20,
    "channels": 2,
    "train_classes": 7,
    "val_classes": 5,
    "test_classes": 6,
    "images_per_class": 9,
}


def test_registered_with_documented_defaults():
    assert {"glyphs", "synthetic"} <= set(DATASETS.names())
    p = DATASETS.get("synthetic").params()
    assert (p.image_size, p.channels, p.images_per_class, p.seed) == (84, 3, 30, 0)
    assert (p.train_classes, p.val_classes, p.test_classes) == (64, 16, 20)
    with pytest.raises(pydantic.ValidationError):
        DATASETS.get("synthetic").params(colours=3)


def test_shapes_dtypes_labels():
    data = load_dataset("synthetic", SMALL)
    for s, n in zip(SPLITS, (7, 5, 6), strict=True):
        sp = data.split(s)
        assert sp.images.dtype == torch.uint8 and sp.images.shape == (n * 9, 2, 20, 20)
        assert sp.labels.dtype == torch.long
        assert torch.equal(sp.labels, torch.arange(n).repeat_interleave(9))
        assert sp.n_classes == n == len(sp.class_names)
        assert data.manifest["n_classes"][s] == n and data.manifest["images"][s] == n * 9
    assert data.manifest["image_shape"] == [2, 20, 20]
    assert len(data.mean) == len(data.std) == 2
    assert 0.45 < data.mean[0] < 0.55 and data.std[0] > 0.1


def test_default_shape_is_paper_like():
    data = load_dataset("synthetic", {})
    assert data.split("train").images.shape == (64 * 30, 3, 84, 84)
    assert data.split("test").images.shape == (20 * 30, 3, 84, 84)


def test_deterministic_in_seed_and_checksummed():
    a, b = load_dataset("synthetic", SMALL), load_dataset("synthetic", SMALL)
    c = load_dataset("synthetic", dict(SMALL, seed=1))
    assert a.manifest["checksum"] == b.manifest["checksum"] != c.manifest["checksum"]
    for s in SPLITS:
        assert torch.equal(a.split(s).images, b.split(s).images)
        assert not torch.equal(a.split(s).images, c.split(s).images)
    pairs = {s: (a.split(s).images, a.split(s).labels) for s in SPLITS}
    assert a.manifest["checksum"] == splits_checksum(pairs)
    assert (a.mean, a.std) == channel_stats(a.split("train").images)


def test_splits_have_different_classes():
    data = load_dataset("synthetic", dict(SMALL, train_classes=5, val_classes=5, test_classes=5))
    protos = {
        s: data.split(s).images.float().view(5, 9, -1).mean(1) for s in SPLITS
    }  # (classes, pixels)
    assert not torch.allclose(protos["train"], protos["val"], atol=5)
    assert not torch.allclose(protos["train"], protos["test"], atol=5)


def test_weakly_learnable():
    """Nearest prototype on raw pixels beats chance clearly but is not perfect."""
    data = load_dataset("synthetic", {"image_size": 28, "channels": 3, "images_per_class": 20})
    sampler = EpisodeSampler(data, "test", ways=5, shots=1, queries=10)
    gen = torch.Generator().manual_seed(0)
    hits = []
    for _ in range(100):
        t = sampler.sample(gen)
        hits.append((torch.cdist(t.xq.flatten(1), t.xs.flatten(1)).argmin(1) == t.yq).float())
    acc = torch.cat(hits).mean().item()
    assert 0.3 < acc < 0.95, acc


def test_any_shape():
    data = load_dataset(
        "synthetic",
        {
            "image_size": 5,
            "channels": 1,
            "train_classes": 2,
            "val_classes": 2,
            "test_classes": 2,
            "images_per_class": 1,
        },
    )
    assert data.split("val").images.shape == (2, 1, 5, 5)
