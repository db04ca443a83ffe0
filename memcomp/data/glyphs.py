"""``glyphs``: the built-in dataset, letters rendered at run time from matplotlib's own fonts.

A class is a letter (Unicode Lu/Ll/Lo without decomposition, Latin/Greek/Cyrillic); its images are
the fonts that draw it, each with a fixed seeded affine jitter, cycled to ``examples`` per class.
Pitfalls handled: blank glyphs (ink check), symbol fonts that map letter codes to other shapes (the
glyph name must be the letter's), and cross-script lookalikes (A/Alpha/Cyrillic A), which are
merged into one class by comparing renders. Builds are cached under ``cache_dir()/glyphs``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import ft2font

from memcomp.data.base import SPLITS, FewShotDataset, ImageSplit
from memcomp.data.cache import (
    cache_dir,
    channel_stats,
    key_digest,
    read_cache,
    remove_cache,
    splits_checksum,
    write_cache,
)
from memcomp.data.glyph_fonts import (
    EM,
    check_renders,
    font_files,
    lookalike_groups,
    open_fonts,
    render,
)
from memcomp.data.params import SPLIT_FRACTIONS, GlyphsParams, glyph_split_sizes
from memcomp.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
JITTER_SEED = 20240601
MAX_ROTATE = 10.0  # degrees
SCALE = (0.9, 1.1)
MAX_SHEAR = 0.1
MAX_SHIFT = 0.04  # fraction of the side


def split_classes(n: int, seed: int) -> dict[str, list[int]]:
    """Seeded class split into SPLIT_FRACTIONS of ``n`` classes (indices sorted in each split)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = glyph_split_sizes(n)
    n_train, n_val = sizes["train"], sizes["val"]
    parts = (perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :])
    return {s: sorted(p) for s, p in zip(SPLITS, parts, strict=True)}


def jitter_thetas(u: torch.Tensor) -> torch.Tensor:
    """Affine maps for :func:`affine_grid` from uniforms ``u`` (n, 5) in [0, 1).

    Columns: rotation, scale, shear, shift x, shift y; the image is sheared, scaled, rotated,
    then shifted, so theta (output -> input coordinates) is the inverse of that map.
    """
    u = u.double() * 2 - 1
    angle = u[:, 0] * math.radians(MAX_ROTATE)
    scale = SCALE[0] + (u[:, 1] + 1) / 2 * (SCALE[1] - SCALE[0])
    shear = u[:, 2] * MAX_SHEAR
    shift = u[:, 3:] * (2 * MAX_SHIFT)  # affine_grid coordinates span 2 per side
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map: scale * R @ [[1, shear], [0, 1]]; its inverse: [[1, -shear], [0, 1]] @ R^T / s
    inv = (
        torch.stack(
            [
                torch.stack([cos + shear * sin, sin - shear * cos], -1),
                torch.stack([-sin, cos], -1),
            ],
            -2,
        )
        / scale[:, None, None]
    )
    return torch.cat([inv, -(inv @ shift[:, :, None])], dim=2).float()


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """Sampling grid (n, size, size, 2) of ``theta`` (as F.affine_grid, align_corners=False)."""
    lin = (torch.arange(size, dtype=theta.dtype) * 2 + 1) / size - 1
    x, y = lin.view(1, 1, size), lin.view(1, size, 1)
    t = theta[:, :, :, None, None]
    return torch.stack([t[:, r, 0] * x + t[:, r, 1] * y + t[:, r, 2] for r in (0, 1)], dim=-1)


def jitter(masters: torch.Tensor, theta: torch.Tensor, chunk_pixels: int = 1 << 22) -> torch.Tensor:
    """Warp uint8 masters (n, 2s, 2s) by ``theta`` and average-pool 2x2: uint8 (n, 1, s, s)."""
    big = masters.shape[-1]
    step = max(1, chunk_pixels // (big * big))
    out = []
    for k in range(0, len(masters), step):
        src = masters[k : k + step].unsqueeze(1).float().div_(255.0)
        grid = affine_grid(theta[k : k + step], big)
        warped = F.grid_sample(
            src, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        out.append(F.avg_pool2d(warped, 2).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def class_draws(n_masters: int, examples: int, code: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed per-class draws: which master each example uses (fonts cycled in a seeded order)
    and its jitter uniforms (examples, 5). Seeded by the class's code point only."""
    gen = torch.Generator().manual_seed(JITTER_SEED * 1_000_003 + code)
    order = torch.randperm(n_masters, generator=gen)
    return order[torch.arange(examples) % n_masters], torch.rand(examples, 5, generator=gen)


def build(params: GlyphsParams) -> tuple[dict[str, torch.Tensor], dict]:
    """Render the dataset: tensors ``<split>/images``, ``<split>/labels`` and the manifest."""
    fonts = open_fonts(params.fonts)
    checks = check_renders(fonts)
    kept = {c: r for c, r in checks.items() if len(r) >= params.min_fonts}
    groups = lookalike_groups(kept)
    if len(groups) < len(SPLITS):
        raise DataError(
            f"glyphs: only {len(groups)} letters are drawn by >= min_fonts={params.min_fonts} "
            f"of {len(fonts)} fonts; lower min_fonts"
        )
    big = 2 * params.image_size
    per_class: list[list[np.ndarray]] = []
    fonts_of: list[list[int]] = []
    kept_groups: list[list[int]] = []
    for f in fonts:
        f.ft.set_size(EM * big, 72)
    for group in groups:
        imgs, used = [], []
        for i in sorted({i for c in group for i in kept[c]}):
            code = next(c for c in group if i in kept[c])
            img = render(fonts[i].ft, chr(code), big)
            if img is not None:
                imgs.append(img)
                used.append(i)
        if imgs:  # (a glyph blank at this size but not at CHECK_SIZE is merely skipped)
            kept_groups.append(group)
            per_class.append(imgs)
            fonts_of.append(used)
    groups = kept_groups
    tensors: dict[str, torch.Tensor] = {}
    classes: dict[str, list[dict]] = {}
    for split, members in split_classes(len(groups), params.seed).items():
        masters, uniforms = [], []
        for k in members:
            pick, u = class_draws(len(per_class[k]), params.examples, groups[k][0])
            masters += [per_class[k][p] for p in pick.tolist()]
            uniforms.append(u)
        theta = jitter_thetas(torch.cat(uniforms))
        tensors[f"{split}/images"] = jitter(torch.from_numpy(np.stack(masters)), theta)
        tensors[f"{split}/labels"] = torch.arange(len(members)).repeat_interleave(params.examples)
        classes[split] = [
            {
                "name": class_name(groups[k]),
                "codes": [f"U+{c:04X}" for c in groups[k]],
                "fonts": len(fonts_of[k]),
            }
            for k in members
        ]
    used_fonts = sorted({i for u in fonts_of for i in u})
    manifest = {
        "name": "glyphs",
        "format": "rendered font glyphs (uint8, N x 1 x H x W)",
        "source": "matplotlib mpl-data/fonts/ttf"
        + (" + system fonts (font_manager.findSystemFonts)" if params.fonts == "system" else ""),
        "matplotlib_version": matplotlib.__version__,
        "freetype_version": ft2font.__freetype_version__,
        "fonts": [
            {
                "file": fonts[i].label,
                "family": fonts[i].ft.family_name,
                "style": fonts[i].ft.style_name,
            }
            for i in used_fonts
        ],
        "n_classes": {s: len(c) for s, c in classes.items()},
        "images": {s: int(tensors[f"{s}/labels"].numel()) for s in SPLITS},
        "image_shape": [1, params.image_size, params.image_size],
        "examples_per_class": params.examples,
        "min_fonts": params.min_fonts,
        "split_seed": params.seed,
        "split_fractions": list(SPLIT_FRACTIONS),
        "classes": classes,
        "merged_lookalikes": [class_name(g) for g in groups if len(g) > 1],
        "jitter": {
            "seed": JITTER_SEED,
            "max_rotate_deg": MAX_ROTATE,
            "scale": list(SCALE),
            "max_shear": MAX_SHEAR,
            "max_shift": MAX_SHIFT,
        },
        "checksum": splits_checksum(_pairs(tensors)),
    }
    return tensors, manifest


def _pairs(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {s: (tensors[f"{s}/images"], tensors[f"{s}/labels"]) for s in SPLITS}


def class_name(group: list[int]) -> str:
    """``A/Α/А``: the letters merged into one class, representative first."""
    return "/".join(chr(c) for c in group)


def cache_key(params: GlyphsParams) -> str:
    """Key of a build: params, versions of this format, matplotlib and FreeType, font files."""
    files = [(p.name, p.stat().st_size) for p in font_files(params.fonts) if p.is_file()]
    return key_digest(
        {
            "format": FORMAT_VERSION,
            "params": params.model_dump(),
            "matplotlib": matplotlib.__version__,
            "freetype": ft2font.__freetype_version__,
            "fonts": files,
        }
    )


def cache_path(params: GlyphsParams) -> Path:
    """The build's folder in the data cache (:mod:`memcomp.data.cache`)."""
    return cache_dir() / "glyphs" / f"glyphs-{params.image_size}px-{cache_key(params)}"


def to_dataset(
    tensors: dict[str, torch.Tensor], manifest: dict, mean: tuple, std: tuple
) -> FewShotDataset:
    """Wrap built tensors into a :class:`FewShotDataset` with the train split's mean/std."""
    splits = {
        s: ImageSplit(
            tensors[f"{s}/images"],
            tensors[f"{s}/labels"].long(),
            [c["name"] for c in manifest["classes"][s]],
        )
        for s in SPLITS
    }
    return FewShotDataset("glyphs", splits, manifest, tuple(mean), tuple(std))


def _store(path: Path, tensors: dict[str, torch.Tensor], manifest: dict) -> dict:
    """Write a build into the data cache; return the cache's meta (with the train mean/std)."""
    splits = (
        (s, x.numpy(), y.numpy(), [c["name"] for c in manifest["classes"][s]])
        for s, (x, y) in _pairs(tensors).items()
    )
    return write_cache(path, splits, {"manifest": manifest})


def load_glyphs(params: GlyphsParams) -> FewShotDataset:
    """Load the glyph dataset from the cache, (re)building it when missing or damaged."""
    path = cache_path(params)
    cached = read_cache(path, in_memory=True, verify=True)
    if cached is not None and cached[0].get("manifest", {}).get("checksum") == cached[0]["sha256"]:
        meta, arrays = cached
        manifest = meta["manifest"]
        tensors = {}
        for s, (x, y) in arrays.items():
            tensors[f"{s}/images"], tensors[f"{s}/labels"] = (
                torch.from_numpy(x),
                torch.from_numpy(y),
            )
        mean, std = meta["mean"], meta["std"]
    else:
        tensors, manifest = build(params)
        remove_cache(path)
        try:
            meta = _store(path, tensors, manifest)
            mean, std = meta["mean"], meta["std"]
        except OSError as e:  # a read-only cache only costs a rebuild next time
            log.warning("could not write the glyph cache %s (%s)", path, e)
            mean, std = channel_stats(tensors["train/images"])
    manifest = dict(manifest, cache_file=str(path), params=params.model_dump())
    return to_dataset(tensors, manifest, mean, std)
