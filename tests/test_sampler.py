"""EpisodeSampler and FewShotDataset.check_setting (memcomp/data/base.py)."""

from __future__ import annotations

import pytest
import torch

from memcomp.data import EpisodeSampler, FewShotDataset, ImageSplit, TaskBatch
from memcomp.errors import DataError, InputError


def make_data(counts: dict[str, list[int]], mean=None, std=None) -> FewShotDataset:
    """Splits whose images encode their own index: pixel (0, 0, 0) = index % 256, (0, 0, 1) =
    index // 256, so every sampled image can be traced back. ``counts[s][c]``: images of class c.
    """
    splits = {}
    for s, per_class in counts.items():
        labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        labels = labels[perm]  # classes interleaved, as in a real decoded split
        images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
        idx = torch.arange(len(labels))
        images[:, 0, 0, 0] = (idx % 256).to(torch.uint8)
        images[:, 0, 0, 1] = (idx // 256).to(torch.uint8)
        splits[s] = ImageSplit(images, labels, [f"{s}{c}" for c in range(len(per_class))])
    return FewShotDataset("toy", splits, {}, mean, std)


def indices(x: torch.Tensor) -> list[int]:
    """Image indices back from images in [0, 1] (normalize=False)."""
    px = (x[:, 0, 0, :2] * 255).round().long()
    return (px[:, 0] + 256 * px[:, 1]).tolist()


STD = {"train": [20] * 10, "val": [20] * 6, "test": [20] * 7}


def test_label_layout_and_shapes():
    data = make_data(STD)
    task = EpisodeSampler(data, "train", ways=5, shots=3, queries=4, normalize=False).sample(
        torch.Generator().manual_seed(0)
    )
    assert task.xs.shape == (15, 1, 4, 4) and task.xq.shape == (20, 1, 4, 4)
    assert task.xs.dtype == torch.float32
    assert task.ys.tolist() == [c for c in range(5) for _ in range(3)]
    assert task.yq.tolist() == [c for c in range(5) for _ in range(4)]
    assert task.ways == 5


def test_episode_images_match_their_labels_and_do_not_repeat():
    data = make_data(STD)
    split = data.split("train")
    sampler = EpisodeSampler(data, "train", ways=4, shots=2, queries=5, normalize=False)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        t = sampler.sample(gen)
        s_idx, q_idx = indices(t.xs), indices(t.xq)
        assert len(set(s_idx + q_idx)) == len(s_idx) + len(q_idx)  # support and query disjoint
        # episode label -> dataset class is one consistent map onto distinct classes
        to_class = {}
        for i, y in zip(s_idx + q_idx, t.ys.tolist() + t.yq.tolist(), strict=True):
            to_class.setdefault(y, int(split.labels[i]))
            assert to_class[y] == int(split.labels[i])
        assert len(set(to_class.values())) == 4


def test_sampling_is_a_pure_function_of_the_generator():
    data = make_data(STD)
    sampler = EpisodeSampler(data, "val", ways=3, shots=1, queries=2)
    a = sampler.sample_batch(torch.Generator().manual_seed(7), 4)
    b = sampler.sample_batch(torch.Generator().manual_seed(7), 4)
    c = sampler.sample_batch(torch.Generator().manual_seed(8), 4)
    assert all(
        torch.equal(x.xs, y.xs) and torch.equal(x.xq, y.xq) for x, y in zip(a, b, strict=True)
    )
    assert not all(torch.equal(x.xs, y.xs) for x, y in zip(a, c, strict=True))
    f1, f2 = sampler.fixed_episodes(5, seed=11), sampler.fixed_episodes(5, seed=11)
    assert all(torch.equal(x.xq, y.xq) for x, y in zip(f1, f2, strict=True))
    # a fresh sampler over the same data gives the same fixed episodes
    f3 = EpisodeSampler(data, "val", ways=3, shots=1, queries=2).fixed_episodes(5, seed=11)
    assert all(torch.equal(x.xs, y.xs) for x, y in zip(f1, f3, strict=True))


def test_small_classes_are_never_drawn():
    counts = {"train": [10, 2, 10, 10, 3, 10], "val": [10] * 3, "test": [10] * 3}
    data = make_data(counts)
    split = data.split("train")
    sampler = EpisodeSampler(data, "train", ways=3, shots=1, queries=4, normalize=False)
    assert sorted(sampler.eligible.tolist()) == [0, 2, 3, 5]
    seen = set()
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        t = sampler.sample(gen)
        seen |= {int(split.labels[i]) for i in indices(t.xs) + indices(t.xq)}
    assert seen == {0, 2, 3, 5}


def test_normalisation_uses_dataset_mean_and_std():
    data = make_data(STD, mean=(0.25,), std=(0.5,))
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    raw = EpisodeSampler(data, "test", 2, 1, 1, normalize=False).sample(gen_a)
    norm = EpisodeSampler(data, "test", 2, 1, 1, normalize=True).sample(gen_b)
    torch.testing.assert_close(norm.xs, (raw.xs - 0.25) / 0.5, rtol=0, atol=1e-6)
    assert raw.xs.min() >= 0 and raw.xs.max() <= 1


def test_check_setting_too_few_classes():
    data = make_data({"train": [20] * 10, "val": [20] * 4, "test": [20] * 7})
    data.check_setting(4, 1, 15)
    with pytest.raises(DataError, match=r"split 'val' has 4 classes, fewer than ways=5"):
        data.check_setting(5, 1, 15)
    with pytest.raises(DataError):
        EpisodeSampler(data, "train", ways=5, shots=1, queries=1)  # any split too small fails
    assert issubclass(DataError, InputError)


def test_check_setting_too_few_images():
    data = make_data({"train": [20] * 3 + [5] * 3, "val": [20] * 5, "test": [20] * 5})
    data.check_setting(3, 5, 15)  # three classes still have 20 images
    data.check_setting(5, 1, 4)
    with pytest.raises(DataError, match=r"split 'train' has only 3 classes with >= shots\+queries"):
        data.check_setting(4, 5, 15)
    with pytest.raises(DataError, match="lower shots or queries"):
        data.check_setting(2, 5, 16)


def test_task_batch_stack_and_index():
    data = make_data(STD)
    tasks = EpisodeSampler(data, "train", 3, 2, 2).sample_batch(torch.Generator().manual_seed(0), 3)
    batch = TaskBatch.stack(tasks)
    assert len(batch) == 3 and batch.xs.shape == (3, 6, 1, 4, 4) and batch.yq.shape == (3, 6)
    assert torch.equal(batch[1].xq, tasks[1].xq)
    moved = tasks[0].to("cpu", torch.float64)
    assert moved.xs.dtype == torch.float64 and moved.ys.dtype == torch.long
