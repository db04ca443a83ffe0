"""``memcomp compare --html FILE``: the comparison as one self-contained, sortable page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from memcomp.fsutil import atomic_write_text
from memcomp.report.compare import Comparison
from memcomp.report.compare_output import fmt_change, fmt_value
from memcomp.report.htmlkit import esc, page, table_html

__all__ = ["compare_html", "write_compare_html"]


def compare_html(cmp: Comparison) -> str:
    """The page: verdict, thresholds, the table of changes, and cells found on one side only."""
    rows = [
        {
            "cell": c.cell,
            "metric": c.metric,
            "base": fmt_value(c.metric, c.base),
            "new": fmt_value(c.metric, c.new),
            "change": fmt_change(c),
            "verdict": c.verdict,
            "test": c.test,
        }
        for c in cmp.changes
    ]
    n = len(cmp.regressions)
    verdict = (
        f'<p class="regression">{n} regression(s) beyond noise</p>'
        if n
        else '<p class="improvement">no regression beyond noise</p>'
    )
    th = cmp.thresholds
    rules = (
        f"alpha {th.alpha:g}; memory: |change| > {th.memory:.0%} and > {th.memory_mb:g} MB; "
        f"time: |change| > {th.time:.0%} (and Welch p < alpha where per-interval samples exist); "
        "accuracy: t-test over the per-episode test accuracies (paired when the episode counts "
        "match)."
    )
    how: dict[str, int] = {}
    for _, _, h in cmp.matched:
        how[h] = how.get(h, 0) + 1
    matched = ", ".join(f"{k} by {h}" for h, k in how.items()) or "none"
    summary = (
        verdict + f'<p class="note">base: {esc(cmp.base)}<br>new: {esc(cmp.new)}<br>'
        f"matched cells: {len(cmp.matched)} ({esc(matched)}); only in base: "
        f"{esc(', '.join(cmp.only_base) or 'none')}; only in new: "
        f'{esc(", ".join(cmp.only_new) or "none")}</p><p class="note">rules: {esc(rules)}</p>'
    )
    table = table_html(pd.DataFrame(rows), "table-compare", ("metric", "verdict"))
    header = f"<h1>memcomp compare</h1><p>{esc(cmp.base)} → {esc(cmp.new)}</p>"
    return page(
        "memcomp compare", header, [("summary", "Summary", summary), ("changes", "Changes", table)]
    )


def write_compare_html(cmp: Comparison, path: Path) -> Path:
    """Write the comparison page to ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, compare_html(cmp))
    return path
