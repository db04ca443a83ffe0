"""Letters from fonts for the ``glyphs`` dataset: which letters a font draws, rendering them,
and merging cross-script lookalikes (A/Alpha/Cyrillic A) by comparing renders.

A class is a letter (Unicode Lu/Ll/Lo without decomposition, Latin/Greek/Cyrillic). Pitfalls
handled: blank glyphs (ink check), symbol fonts that map letter codes to other shapes (the glyph
name must be the letter's), and lookalikes across scripts.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import ft2font

SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
EM = 0.8  # font size as a fraction of the canvas side
BASELINE = 0.74  # baseline row as a fraction of the canvas side
CHECK_SIZE = 32  # canvas used for blank checks and lookalike detection (independent of output)
MIN_INK = 4.0  # a render with less ink (in full pixels at CHECK_SIZE) counts as blank
SAME_DIST = 0.03  # renders closer than this (relative squared distance) are the same picture
_FLAGS = getattr(ft2font, "LoadFlags", None)
_NO_HINTING = _FLAGS.NO_HINTING if _FLAGS is not None else 2


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


def check_renders(fonts: list[_Font]) -> dict[int, dict[int, np.ndarray]]:
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
