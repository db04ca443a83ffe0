"""``memcomp compare --html FILE``: the comparison as one self-contained, sortable page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from memcomp.fsutil import atomic_write_text
from memcomp.report.compare import Comparison
from memcomp.report.compare_output import counts, fmt_change, fmt_value, shown, write_csv
from memcomp.report.htmlkit import esc, page, path_href, table_html

__all__ = ["compare_html", "write_compare_html"]


INLINE_ROWS = 500  # change rows inline in the page; all of them are in the CSV beside it
LIST_IDS = 50  # cell ids listed as only in base / only in new


def _ids(ids: list[str]) -> str:
    if not ids:
        return "none"
    more = f" and {len(ids) - LIST_IDS} more" if len(ids) > LIST_IDS else ""
    return ", ".join(ids[:LIST_IDS]) + more


def compare_html(cmp: Comparison, csv_name: str | None = None) -> str:
    """The page: verdict, thresholds, the table of changes (the first :data:`INLINE_ROWS`,
    regressions first, when there are more: ``csv_name``, written beside the page, has all)
    and cells found on one side only."""
    table = shown(cmp, INLINE_ROWS)
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
        for c in cmp.rows(table)
    ]
    n = cmp.n_regressions
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
        f"{esc(_ids(cmp.only_base))}; only in new: "
        f'{esc(_ids(cmp.only_new))}</p><p class="note">rules: {esc(rules)}</p>'
    )
    more = ""
    if len(table) < len(cmp.table):
        totals = table_html(counts(cmp), "table-compare-counts")
        link = (
            f'; every row is in <a href="{esc(path_href(csv_name))}">{esc(csv_name)}</a> beside '
            "this page"
            if csv_name
            else ""
        )
        more = (
            f'<p class="note">{len(cmp.table)} rows (cell x metric): the first {len(table)} are '
            f"shown (regressions, then improvements){link}.</p>{totals}"
        )
    changes = more + table_html(pd.DataFrame(rows), "table-compare", ("metric", "verdict"))
    header = f"<h1>memcomp compare</h1><p>{esc(cmp.base)} → {esc(cmp.new)}</p>"
    return page(
        "memcomp compare",
        header,
        [("summary", "Summary", summary), ("changes", "Changes", changes)],
    )


def write_compare_html(cmp: Comparison, path: Path) -> Path:
    """Write the comparison page to ``path`` (atomically); when it cannot show every row, the
    full table too, as ``<page stem>.csv`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_name = None
    if len(cmp.table) > INLINE_ROWS:
        csv_name = f"{path.stem}.csv"
        write_csv(cmp, path.parent / csv_name)
    atomic_write_text(path, compare_html(cmp, csv_name))
    return path
