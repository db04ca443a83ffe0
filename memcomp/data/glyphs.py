"""``glyphs``: the built-in dataset, letters rendered at run time from matplotlib's own fonts.

A class is a letter (Unicode Lu/Ll/Lo without decomposition, Latin/Greek/Cyrillic); its images are
the fonts that draw it, each with a fixed seeded affine jitter, cycled to ``examples`` per class.
Pitfalls handled: blank glyphs (ink check), symbol fonts that map letter codes to other shapes (the
glyph name must be the letter's), and cross-script lookalikes (A/Alpha/Cyrillic A), which are
merged into one class by comparing renders. Builds are cached under ``cache_dir()/glyphs``.
"""

from __future__ import annotations

import functools
import logging
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import ft2font
from pydantic import Field

from memcomp.data import DATASETS, DatasetParams
from memcomp.data.base import SPLITS, FewShotDataset, ImageSplit
from memcomp.data.cache import (
    cache_dir,
    channel_stats,
    key_digest,
    load_tensors,
    save_tensors,
    tensors_checksum,
)
from memcomp.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
EM = 0.8  # font size as a fraction of the canvas side
BASELINE = 0.74  # baseline row as a fraction of the canvas side
CHECK_SIZE = 32  # canvas used for blank checks and lookalike detection (independent of output)
MIN_INK = 4.0  # a render with less ink (in full pixels at CHECK_SIZE) counts as blank
SAME_DIST = 0.03  # renders closer than this (relative squared distance) are the same picture
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
JITTER_SEED = 20240601
MAX_ROTATE = 10.0  # degrees
SCALE = (0.9, 1.1)
MAX_SHEAR = 0.1
MAX_SHIFT = 0.04  # fraction of the side
_FLAGS = getattr(ft2font, "LoadFlags", None)
_NO_HINTING = _FLAGS.NO_HINTING if _FLAGS is not None else 2


class GlyphsParams(DatasetParams):
    """Options of the ``glyphs`` dataset."""

    image_size: int = Field(28, ge=8, le=256, description="side of the square images")
    examples: int = Field(20, ge=1, le=500, description="images per class")
    min_fonts: int = Field(16, ge=1, description="keep letters drawn by at least this many fonts")
    fonts: Literal["bundled", "system"] = Field(
        "bundled", description="matplotlib's bundled fonts, or those plus the system's fonts"
    )
    seed: int = Field(0, description="seed of the train/val/test class split")


@dataclass
class _Font:
    label: str
    ft: ft2font.FT2Font


def is_candidate(code: int) -> bool:
    """A base letter (Lu/Ll/Lo, no decomposition) of the Latin, Greek or Cyrillic script."""
    ch = chr(code)
    if unicodedata.category(ch) not in ("Lu", "Ll", "Lo") or unicodedata.decomposition(ch):
        return False
    return unicodedata.name(ch, "").split(" ", 1)[0] in SCRIPTS


@functools.cache
def candidates() -> frozenset[int]:
    """All candidate letters (they all lie below U+20000)."""
    return frozenset(c for c in range(0x20000) if is_candidate(c))


def _glyph_name(ft: ft2font.FT2Font, index: int) -> str:
    try:
        return ft.get_glyph_name(index)
    except Exception:
        return ""


def letter_codes(ft: ft2font.FT2Font) -> list[int]:
    """Candidate letters whose glyph in ``ft`` is named as that letter.

    ASCII letters need their own name (or ``uniXXXX``); other letters are accepted by their
    ``uniXXXX`` name, or by any real name if the font names all its ASCII letters correctly
    (symbol fonts such as cmex10/cmsy10 put symbols on letter codes and fail that test).
    """
    cmap = ft.get_charmap()
    cmap = {c: cmap[c] for c in candidates() & cmap.keys()}

    def exact(code: int, name: str) -> bool:
        return name in (chr(code), f"uni{code:04X}", f"u{code:04X}", f"u{code:05X}")

    names = {c: _glyph_name(ft, g) for c, g in cmap.items()}
    ascii_ok = all(exact(c, n) for c, n in names.items() if c < 128)
    return sorted(
        c
        for c, n in names.items()
        if exact(c, n) or (c >= 128 and ascii_ok and n not in ("", ".notdef"))
    )


def render(ft: ft2font.FT2Font, ch: str, size: int) -> np.ndarray | None:
    """``ch`` drawn on a ``size`` x ``size`` uint8 canvas (baseline fixed, ink centred across).

    The font size must already be set with ``ft.set_size(EM * size, 72)``. Returns None for a
    blank glyph.
    """
    ft.set_text(ch, 0.0, flags=_NO_HINTING)
    ft.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(ft.get_image())
    if img.size == 0 or not img.any():
        return None
    cols = np.flatnonzero(img.max(axis=0))
    img = img[:, cols[0] : cols[-1] + 1]
    h, w = img.shape
    top = round(BASELINE * size) - h + round(ft.get_descent() / 64)
    left = (size - w) // 2
    canvas = np.zeros((size, size), np.uint8)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, size), min(left + w, size)
    if r1 > r0 and c1 > c0:
        canvas[r0:r1, c0:c1] = img[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas


def font_files(which: str) -> list[Path]:
    """Font files to use: matplotlib's bundled TrueType fonts, plus system fonts if asked."""
    bundled = sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))
    if which == "bundled":
        return bundled
    from matplotlib import font_manager

    system = sorted(
        {Path(p) for p in font_manager.findSystemFonts() if p.lower().endswith((".ttf", ".otf"))}
    )
    return bundled + system


def open_fonts(which: str) -> list[_Font]:
    """Open the fonts, skipping unreadable files and repeats of a (postscript) font name."""
    out, seen = [], set()
    bundled_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for path in font_files(which):
        try:
            ft = ft2font.FT2Font(str(path))
        except Exception:
            continue
        key = ft.postscript_name or path.name
        if key in seen:
            continue
        seen.add(key)
        label = path.name if path.parent == bundled_dir else str(path)
        out.append(_Font(label, ft))
    return out


def _check_renders(fonts: list[_Font]) -> dict[int, dict[int, np.ndarray]]:
    """{code: {font index: CHECK_SIZE render}} of every letter a font draws, blanks dropped."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for i, f in enumerate(fonts):
        f.ft.set_size(EM * CHECK_SIZE, 72)
        for code in letter_codes(f.ft):
            img = render(f.ft, chr(code), CHECK_SIZE)
            if img is not None and img.sum() >= MIN_INK * 255:
                out.setdefault(code, {})[i] = img
    return out


def lookalike_groups(renders: dict[int, dict[int, np.ndarray]]) -> list[list[int]]:
    """Groups of letters whose renders are the same picture in most fonts that draw both.

    Two letters are linked when, in at least half of their common fonts, their renders differ
    by less than SAME_DIST in squared distance relative to their total squared ink; groups are
    the connected components. Each group is sorted by (-number of fonts, code point).
    """
    codes = sorted(renders)
    n = len(codes)
    close = torch.zeros(n, n, dtype=torch.int32)
    common = torch.zeros(n, n, dtype=torch.int32)
    for i in sorted({i for r in renders.values() for i in r}):
        have = torch.tensor([i in renders[c] for c in codes])
        x = torch.zeros(n, CHECK_SIZE * CHECK_SIZE)
        imgs = np.stack([renders[c][i].reshape(-1) for c in codes if i in renders[c]])
        x[have] = torch.from_numpy(imgs).float().div_(255.0)
        sq = (x * x).sum(-1)
        tot = (sq[:, None] + sq[None, :]).clamp_min(1e-12)
        both = have[:, None] & have[None, :]
        common += both
        close += ((tot - 2 * x @ x.T) / tot < SAME_DIST) & both
    linked = (2 * close >= common) & (common > 0)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in linked.nonzero().tolist():
        if a < b:
            parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for k, c in enumerate(codes):
        groups.setdefault(find(k), []).append(c)
    out = [sorted(g, key=lambda c: (-len(renders[c]), c)) for g in groups.values()]
    return sorted(out, key=lambda g: g[0])


def split_classes(n: int, seed: int) -> dict[str, list[int]]:
    """Seeded class split into SPLIT_FRACTIONS of ``n`` classes (indices sorted in each split)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = round(SPLIT_FRACTIONS[0] * n)
    n_val = round(SPLIT_FRACTIONS[1] * n)
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
    checks = _check_renders(fonts)
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
        "checksum": tensors_checksum(tensors),
    }
    return tensors, manifest


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
    return cache_dir() / "glyphs" / f"glyphs-{params.image_size}px-{cache_key(params)}.pt"


def to_dataset(tensors: dict[str, torch.Tensor], manifest: dict) -> FewShotDataset:
    """Wrap built tensors into a :class:`FewShotDataset` with train-split mean/std."""
    splits = {
        s: ImageSplit(
            tensors[f"{s}/images"],
            tensors[f"{s}/labels"].long(),
            [c["name"] for c in manifest["classes"][s]],
        )
        for s in SPLITS
    }
    mean, std = channel_stats(splits["train"].images)
    return FewShotDataset("glyphs", splits, manifest, mean, std)


@DATASETS.register(
    "glyphs",
    "letters rendered from matplotlib's bundled fonts (~280 classes, no download)",
    GlyphsParams,
)
def load_glyphs(params: GlyphsParams) -> FewShotDataset:
    """Load the glyph dataset from the cache, (re)building it when missing or damaged."""
    path = cache_path(params)
    cached = load_tensors(path)
    if cached is not None and cached[1].get("checksum") == tensors_checksum(cached[0]):
        tensors, manifest = cached
    else:
        tensors, manifest = build(params)
        try:
            save_tensors(path, tensors, manifest)
        except OSError as e:  # a read-only cache only costs a rebuild next time
            log.warning("could not write the glyph cache %s (%s)", path, e)
    manifest = dict(manifest, cache_file=str(path), params=params.model_dump())
    return to_dataset(tensors, manifest)
