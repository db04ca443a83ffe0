"""The built-in ``glyphs`` dataset and the cache helpers it uses."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F
from matplotlib import ft2font

from memcomp.data import DATASETS, EpisodeSampler, load_dataset
from memcomp.data import glyph_fonts as gf
from memcomp.data import glyphs as g
from memcomp.data.base import SPLITS
from memcomp.data.cache import (
    arrays_sha256,
    cache_dir,
    channel_stats,
    data_root,
    read_cache,
    splits_checksum,
    verify_cache,
    write_cache,
)
from memcomp.errors import DataError

TTF = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, one_thread):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("memcomp-cache")
        mp.setenv("MEMCOMP_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def glyphs(cache):
    return load_dataset("glyphs", {})


def _font(name: str) -> ft2font.FT2Font:
    return ft2font.FT2Font(str(TTF / name))


# --- cache helpers -------------------------------------------------------------------------


def test_cache_dirs_follow_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMCOMP_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("MEMCOMP_DATA", str(tmp_path / "d"))
    assert cache_dir() == tmp_path / "c"
    assert data_root() == tmp_path / "d"
    monkeypatch.delenv("MEMCOMP_CACHE")
    monkeypatch.delenv("MEMCOMP_DATA")
    assert cache_dir() == Path.home() / ".cache" / "memcomp"
    assert data_root() == Path.home() / ".cache" / "memcomp" / "data"


def _splits(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [
        (sp, rng.integers(0, 256, (6, 2, 3, 3), dtype=np.uint8), np.arange(6) // 2, list("abc"))
        for sp in SPLITS
    ]


def test_write_read_roundtrip_and_damage(tmp_path):
    splits = _splits()
    path = tmp_path / "sub" / "x"
    meta = write_cache(path, splits, {"k": [1, 2]})
    assert [p.name for p in path.parent.iterdir()] == ["x"]  # no temp folder left behind
    assert meta["sha256"] == splits_checksum({s: (x, y) for s, x, y, _ in splits})
    got = read_cache(path, verify=True)
    assert got is not None and got[0]["k"] == [1, 2]
    assert got[0]["splits"]["val"]["class_names"] == ["a", "b", "c"]
    for s, x, y, _ in splits:
        assert np.array_equal(got[1][s][0], x) and np.array_equal(got[1][s][1], y)
    assert verify_cache(path) is True
    # an array changed behind the checksum's back is rejected when verifying
    x = np.load(path / "test_images.npy")
    x[0, 0, 0, 0] ^= 0xFF
    np.save(path / "test_images.npy", x)
    assert read_cache(path, verify=True) is None and verify_cache(path) is False
    # garbage bytes, a missing array and a missing folder are rejected too
    (path / "val_labels.npy").write_bytes(b"not an npy file")
    assert read_cache(path) is None
    (path / "val_labels.npy").unlink()
    assert read_cache(path) is None
    assert read_cache(tmp_path / "missing") is None and verify_cache(tmp_path / "missing") is None
    with pytest.raises(ValueError, match="expected"):  # all three splits are required
        write_cache(tmp_path / "y", splits[:2], {})
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y*"))


def test_checksum_sees_dtypes_shapes_and_bytes():
    x, y = np.zeros((2, 1, 2, 3), np.uint8), np.zeros(2, np.int64)
    ref = arrays_sha256(x, y).hexdigest()
    assert arrays_sha256(x.reshape(2, 1, 3, 2), y).hexdigest() != ref
    assert arrays_sha256(x.astype(np.int8), y).hexdigest() != ref
    changed = x.copy()
    changed[1, 0, 1, 2] = 1
    assert arrays_sha256(changed, y).hexdigest() != ref
    assert arrays_sha256(x, y + 1).hexdigest() != ref
    assert arrays_sha256(torch.from_numpy(x.copy()), y).hexdigest() == ref  # tensors alike
    base = {s: (x, y) for s in SPLITS}
    assert splits_checksum(base) != splits_checksum({**base, "val": (changed, y)})


def test_channel_stats_exact():
    x = torch.randint(
        0, 256, (40, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = channel_stats(x)
    y = x.double() / 255
    torch.testing.assert_close(
        torch.tensor(mean, dtype=torch.float64), y.mean((0, 2, 3)), rtol=0, atol=1e-12
    )
    ref_std = y.std((0, 2, 3), unbiased=False)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), ref_std, rtol=0, atol=1e-12)
    assert channel_stats(x.numpy()) == (mean, std)  # numpy arrays and memory maps alike


# --- glyph selection -------------------------------------------------------------------------


def test_candidates_are_base_letters_of_three_scripts():
    assert gf.is_candidate(ord("A")) and gf.is_candidate(ord("ж")) and gf.is_candidate(ord("λ"))
    assert not gf.is_candidate(ord("É"))  # decomposes into E + accent
    assert not gf.is_candidate(ord("7")) and not gf.is_candidate(ord("א"))  # digit, Hebrew
    assert not gf.is_candidate(ord("ʰ"))  # modifier letter (Lm)


def test_symbol_fonts_are_rejected_by_glyph_name():
    assert gf.letter_codes(_font("cmex10.ttf")) == []  # letter codes carry bracket pieces
    cmsy = gf.letter_codes(_font("cmsy10.ttf"))  # capitals are letters, lowercase are symbols
    assert cmsy == [ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    assert gf.letter_codes(_font("LastResortHE-Regular.ttf")) == []
    sans = gf.letter_codes(_font("DejaVuSans.ttf"))
    assert {ord(c) for c in "aZΩжß"} <= set(sans)


def test_render_layout_and_blank():
    ft = _font("DejaVuSans.ttf")
    ft.set_size(gf.EM * 64, 72)
    assert gf.render(ft, " ", 64) is None
    o, big_o, p = (gf.render(ft, c, 64) for c in "oOp")
    rows = [np.flatnonzero(im.max(1)) for im in (o, big_o, p)]
    base = round(gf.BASELINE * 64)
    assert abs(rows[0][-1] - base) <= 2 and abs(rows[1][-1] - base) <= 2  # sit on the baseline
    assert rows[2][-1] > base + 8  # descender below it
    assert rows[1][0] < rows[0][0] - 5  # capital taller than lowercase
    cols = np.flatnonzero(big_o.max(0))
    assert abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1  # centred across


def test_lookalike_groups_merge_identical_pictures_only():
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 256, (gf.CHECK_SIZE,) * 2, dtype=np.uint8) for _ in range(3))
    renders = {
        65: {0: a, 1: a, 2: b},
        913: {0: a, 1: a},  # same picture as 65 in both common fonts
        66: {0: b, 1: b, 2: b},
        67: {0: b, 1: c},  # like 66 in one font of two: merged (half the common fonts)
        68: {2: a},  # no font in common with 913
    }
    groups = gf.lookalike_groups(renders)
    assert sorted(groups) == sorted([[65, 913], [66, 67], [68]])


def test_jitter_thetas_invert_the_forward_map():
    u = torch.rand(64, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    theta = g.jitter_thetas(u).double()
    v = u * 2 - 1
    angle = v[:, 0] * math.radians(g.MAX_ROTATE)
    scale = g.SCALE[0] + (v[:, 1] + 1) / 2 * (g.SCALE[1] - g.SCALE[0])
    rot = torch.stack(
        [torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)],
        -2,
    )
    shear = torch.eye(2, dtype=torch.float64).repeat(64, 1, 1)
    shear[:, 0, 1] = v[:, 2] * g.MAX_SHEAR
    fwd = rot @ shear * scale[:, None, None]
    shift = v[:, 3:, None] * 2 * g.MAX_SHIFT
    # theta maps output points back: theta @ (fwd @ p + shift) == p
    p = torch.randn(64, 2, 1, dtype=torch.float64)
    back = theta[:, :, :2] @ (fwd @ p + shift) + theta[:, :, 2:]
    torch.testing.assert_close(back, p, rtol=0, atol=1e-6)
    grid = g.affine_grid(theta.float(), 20)
    ref = F.affine_grid(theta.float(), [64, 1, 20, 20], align_corners=False)
    torch.testing.assert_close(grid, ref, rtol=0, atol=1e-5)


def test_split_classes_seeded_and_partitioning():
    a, b, c = g.split_classes(283, 0), g.split_classes(283, 0), g.split_classes(283, 1)
    assert a == b and a != c
    for s in (a, c):
        assert sorted(s["train"] + s["val"] + s["test"]) == list(range(283))
        assert [len(s[k]) for k in SPLITS] == [170, 57, 56]


def test_params_are_validated():
    entry = DATASETS.get("glyphs")
    with pytest.raises(pydantic.ValidationError):
        entry.params(fonts="mine")
    with pytest.raises(pydantic.ValidationError):
        entry.params(exmples=5)
    assert entry.params().image_size == 28 and entry.params().examples == 20


# --- the built dataset ---------------------------------------------------------------------


def test_shapes_labels_and_manifest(glyphs):
    m = glyphs.manifest
    total = sum(m["n_classes"].values())
    assert 250 <= total <= 320, total
    assert m["matplotlib_version"] == matplotlib.__version__
    assert len(m["fonts"]) >= 16 and all(f["file"].endswith(".ttf") for f in m["fonts"])
    assert m["image_shape"] == [1, 28, 28]
    for s in SPLITS:
        sp = glyphs.split(s)
        n = m["n_classes"][s]
        assert sp.images.dtype == torch.uint8 and sp.images.shape == (20 * n, 1, 28, 28)
        assert sp.labels.dtype == torch.long
        assert torch.equal(sp.counts, torch.full((n,), 20))
        assert sp.n_classes == n == len(sp.class_names) and m["images"][s] == 20 * n
        assert sp.images.float().mean() > 5  # not blank
    assert m["n_classes"]["train"] > 2.5 * m["n_classes"]["test"]
    tensors = {
        f"{s}/{k}": getattr(glyphs.split(s), k) for s in SPLITS for k in ("images", "labels")
    }
    assert m["checksum"] == splits_checksum(
        {s: (tensors[f"{s}/images"], tensors[f"{s}/labels"]) for s in SPLITS}
    )
    mean, std = channel_stats(glyphs.split("train").images)
    assert glyphs.mean == pytest.approx(mean) and glyphs.std == pytest.approx(std)
    assert 0.03 < glyphs.mean[0] < 0.3 and glyphs.std[0] > 0.1


def test_declared_supply_matches_the_build(glyphs):
    """The torch-free declaration (memcomp.data.params.GLYPH_CLASSES) that `validate` uses."""
    supply = g.GlyphsParams().supply()
    assert supply.classes == glyphs.manifest["n_classes"]
    assert supply.per_class == 20 and (supply.channels, supply.image_size) == (1, 28)
    groups = gf.lookalike_groups(
        {c: r for c, r in gf.check_renders(gf.open_fonts("bundled")).items() if len(r) >= 12}
    )
    assert sum(g.GlyphsParams(min_fonts=12).supply().classes.values()) == len(groups)


def test_splits_are_disjoint_and_lookalikes_merged(glyphs):
    names = {s: glyphs.split(s).class_names for s in SPLITS}
    letters = {s: {ch for n in names[s] for ch in n.split("/")} for s in SPLITS}
    assert not letters["train"] & letters["val"]
    assert not letters["train"] & letters["test"]
    assert not letters["val"] & letters["test"]
    everything = [n for s in SPLITS for n in names[s]]
    assert "A/Α/А" in everything and "o/ο/о" in everything  # Latin/Greek/Cyrillic merged
    assert "D" in everything and "Ð/Đ" in everything  # a crossbar makes a different letter


def test_no_two_identical_classes_in_a_split(glyphs):
    """Un-jittered renders of two classes of a split differ in most fonts that draw both.

    Cross-script twins (A/Alpha) are pixel-identical in nearly every font (distance ~0); the
    closest genuinely different letters (D/Eth, Cyrillic en/small capital H) are ~0.04 apart.
    """
    fonts = [_font(f["file"]) for f in glyphs.manifest["fonts"]]
    for ft in fonts:
        ft.set_size(gf.EM * 24, 72)
    codes = [set(gf.letter_codes(ft)) for ft in fonts]
    for s in SPLITS:
        reps = [n.split("/")[0] for n in glyphs.split(s).class_names]
        x = np.zeros((len(fonts), len(reps), 24 * 24))
        have = np.zeros((len(fonts), len(reps)), bool)
        for i, ch in enumerate(reps):
            for k, ft in enumerate(fonts):
                if ord(ch) in codes[k]:
                    x[k, i] = gf.render(ft, ch, 24).reshape(-1) / 255
                    have[k, i] = True
        sq = (x * x).sum(-1)
        tot = sq[:, :, None] + sq[:, None, :] + 1e-12
        dist = (tot - 2 * np.einsum("kip,kjp->kij", x, x)) / tot
        dist[~(have[:, :, None] & have[:, None, :])] = np.nan
        median = np.nanmedian(dist, axis=0)
        np.fill_diagonal(median, np.inf)
        assert np.nanmin(median) > 0.02, (s, np.nanmin(median))


def test_prototypes_on_raw_pixels_beat_chance_but_not_trivially(glyphs):
    sampler = EpisodeSampler(glyphs, "test", ways=5, shots=1, queries=15, normalize=False)
    gen = torch.Generator().manual_seed(0)
    hits = []
    for _ in range(200):
        t = sampler.sample(gen)
        pred = torch.cdist(t.xq.flatten(1), t.xs.flatten(1)).argmin(1)
        hits.append((pred == t.yq).float().mean())
    acc = torch.stack(hits).mean().item()
    assert 0.4 < acc < 0.95, acc


def test_cache_reused_then_rebuilt_identically_after_damage(glyphs, cache, monkeypatch):
    path = g.cache_path(g.GlyphsParams())
    assert path.is_dir() and cache in path.parents
    assert glyphs.manifest["cache_file"] == str(path)

    def no_build(params):
        raise AssertionError("cache not used")

    monkeypatch.setattr(g, "build", no_build)
    again = load_dataset("glyphs", {})
    assert again.manifest["checksum"] == glyphs.manifest["checksum"]
    monkeypatch.undo()

    stored = path / "train_images.npy"
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip a byte inside the stored arrays
    stored.write_bytes(bytes(raw))
    rebuilt = load_dataset("glyphs", {})
    assert rebuilt.manifest["checksum"] == glyphs.manifest["checksum"]
    for s in SPLITS:  # byte-identical second build
        assert torch.equal(rebuilt.split(s).images, glyphs.split(s).images)
        assert torch.equal(rebuilt.split(s).labels, glyphs.split(s).labels)
    assert read_cache(path, verify=True) is not None  # the damaged cache was replaced


def test_other_params_get_their_own_cache_file(cache):
    assert g.cache_path(g.GlyphsParams()) != g.cache_path(g.GlyphsParams(seed=1))
    assert g.cache_path(g.GlyphsParams()) != g.cache_path(g.GlyphsParams(image_size=84))
    assert g.cache_path(g.GlyphsParams()) == g.cache_path(g.GlyphsParams(image_size=28))


def test_image_size_84(glyphs, cache):
    big = load_dataset("glyphs", {"image_size": 84, "examples": 3})
    assert big.manifest["n_classes"] == glyphs.manifest["n_classes"]
    for s in SPLITS:
        assert big.split(s).class_names == glyphs.split(s).class_names
        assert big.split(s).images.shape == (3 * big.split(s).n_classes, 1, 84, 84)
    # the same jitter at 3x the resolution: downsampled it resembles the 28 px image
    small = glyphs.split("train").images[:3].float()
    down = F.avg_pool2d(big.split("train").images[:3].float(), 3)
    assert (down - small).abs().mean() < 12
    sampler = EpisodeSampler(big, "train", ways=5, shots=1, queries=2)
    task = sampler.sample(torch.Generator().manual_seed(0))
    assert task.xs.shape == (5, 1, 84, 84)


@pytest.mark.slow
def test_system_fonts_option(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMCOMP_CACHE", str(tmp_path))
    data = load_dataset("glyphs", {"fonts": "system", "examples": 2})
    files = [f["file"] for f in data.manifest["fonts"]]
    assert "DejaVuSans.ttf" in files
    assert "system fonts" in data.manifest["source"]
    assert sum(data.manifest["n_classes"].values()) >= 250


def test_too_strict_min_fonts_is_a_clean_error(cache):
    with pytest.raises(DataError, match="lower min_fonts"):
        load_dataset("glyphs", {"min_fonts": 1000})
