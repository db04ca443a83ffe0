"""What ``memcomp compare`` shows: formatted values, the rich table and JUnit XML."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from memcomp.fsutil import atomic_open
from memcomp.report.compare import (
    COLUMNS,
    IMPROVEMENT,
    NA,
    REGRESSION,
    WITHIN,
    Change,
    Comparison,
)

__all__ = [
    "counts",
    "fmt_change",
    "fmt_value",
    "print_comparison",
    "shown",
    "write_csv",
    "write_junit",
]


def fmt_value(metric: str, v: float | str | None) -> str:
    """A metric value for display (accuracy %, MB, s/iter, s)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, str):
        return v
    return {"accuracy": "{:.2f}%", "peak_mem_mb": "{:.1f} MB", "sec_per_iter": "{:.4f} s"}.get(
        metric, "{:.2f} s"
    ).format(v)


def fmt_change(c: Change) -> str:
    """The change: percentage points for accuracy, relative % otherwise."""
    return _fmt_change(c.metric, c.change)


def _fmt_change(metric: str, change: float) -> str:
    if isinstance(change, float) and math.isnan(change):
        return "–"
    if metric == "accuracy":
        return f"{change:+.2f} pp"
    return f"{100 * change:+.1f}%"


# rows printed (and JUnit testcases written one per change) up to these counts; beyond them the
# terminal shows the regressions and improvements first and JUnit summarises the rest per metric
SHOW_ROWS = 200
JUNIT_ROWS = 5000
_RANK = {REGRESSION: 0, IMPROVEMENT: 1, WITHIN: 2, NA: 3}


def shown(cmp: Comparison, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows of ``cmp.table``: all of them when they fit, else regressions,
    then improvements, then the rest, each in matched order."""
    table = cmp.table
    if len(table) <= limit:
        return table
    rank = table["verdict"].map(_RANK).fillna(4).to_numpy()
    return table.iloc[np.argsort(rank, kind="stable")[:limit]]


def counts(cmp: Comparison) -> pd.DataFrame:
    """Rows per metric and verdict (a summary of a comparison too big to print)."""
    c = cmp.table.groupby(["metric", "verdict"], sort=False).size().unstack(fill_value=0)
    return c.reindex(columns=[v for v in _RANK if v in c.columns]).reset_index()


def print_comparison(cmp: Comparison, console: Any) -> None:
    """The comparison on a rich console: one row per cell and metric (the first
    :data:`SHOW_ROWS`, regressions first, with a count per metric and verdict when there are
    more), then a summary line."""
    from rich.markup import escape
    from rich.table import Table

    colour = {REGRESSION: "bold red", IMPROVEMENT: "green", WITHIN: "", NA: "dim"}
    rows = shown(cmp, SHOW_ROWS)
    title = f"memcomp compare {cmp.base} -> {cmp.new}"
    if len(rows) < len(cmp.table):
        summary = Table(title=escape(f"{title}: rows per metric and verdict"), title_justify="left")
        totals = counts(cmp)
        for col in totals.columns:
            summary.add_column(escape(str(col)))
        for r in totals.itertuples(index=False):
            summary.add_row(*(escape(str(v)) for v in r))
        console.print(summary)
        title += f" (first {len(rows)} of {len(cmp.table)} rows: regressions, then improvements)"
    table = Table(title=escape(title), title_justify="left")
    for col in ("cell", "metric", "base", "new", "change", "verdict", "test"):
        table.add_column(col, overflow="fold")
    for c in cmp.rows(rows):
        style = colour.get(c.verdict, "")
        verdict = f"[{style}]{escape(c.verdict)}[/]" if style else escape(c.verdict)
        values = [c.cell, c.metric, fmt_value(c.metric, c.base), fmt_value(c.metric, c.new)]
        table.add_row(*map(escape, values), fmt_change(c), verdict, escape(c.test))
    console.print(table)
    if len(rows) < len(cmp.table):
        console.print(
            escape(f"{len(cmp.table) - len(rows)} more rows: every row is in --csv FILE and "
                   "--html FILE (with the CSV beside it)")
        )  # fmt: skip
    by_how: dict[str, int] = {}
    for _, _, how in cmp.matched:
        by_how[how] = by_how.get(how, 0) + 1
    console.print(
        f"matched {len(cmp.matched)} cells ("
        + ", ".join(f"{n} by {h}" for h, n in by_how.items())
        + f"); only in base: {len(cmp.only_base)}, only in new: {len(cmp.only_new)}"
    )
    n = cmp.n_regressions
    console.print(
        f"[bold red]{n} regression(s)[/]" if n else "[green]no regression[/] beyond noise"
    )


def write_csv(cmp: Comparison, path: Path) -> Path:
    """Every change, one row per cell and metric, as CSV (atomically; written in slices, so a
    million rows never become one string)."""
    table, step = cmp.table, 50_000
    with atomic_open(Path(path), "w") as f:
        for start in range(0, max(len(table), 1), step):
            part = table.iloc[start : start + step][COLUMNS].copy()
            part.insert(5, "shown_change", list(map(_fmt_change, part["metric"], part["change"])))
            part.to_csv(f, index=False, header=start == 0)
    return Path(path)


def _case(classname: str, name: str, kind: str, text: str) -> str:
    """One ``<testcase>`` with a failure, skipped or system-out child holding ``text``."""
    head = f"    <testcase classname={quoteattr(classname)} name={quoteattr(name)}>\n"
    if kind == "failure":
        child = f'<failure message={quoteattr(text)} type="Regression">{xml_escape(text)}</failure>'
    elif kind == "skipped":
        child = f"<skipped message={quoteattr(text)} />"
    else:
        child = f"<system-out>{xml_escape(text)}</system-out>"
    return f"{head}      {child}\n    </testcase>\n"


def write_junit(cmp: Comparison, path: Path) -> None:
    """JUnit XML: one testcase per cell and metric (a regression is a failure, n/a skipped).
    Above :data:`JUNIT_ROWS` changes, every regression is still its own failing testcase and
    the other rows are one testcase per metric and verdict, with their count. Written as a
    stream (atomically), never as one tree in memory."""
    table = cmp.table
    big = len(table) > JUNIT_ROWS
    individual = table[table["verdict"] == REGRESSION] if big else table
    summary = []
    if big:
        rest = table[table["verdict"] != REGRESSION]
        summary = list(rest.groupby(["metric", "verdict"], sort=False).size().items())
    kinds = {REGRESSION: "failure", NA: "skipped"}
    skipped = sum(v == NA for (_, v), _ in summary) + int((individual["verdict"] == NA).sum())
    with atomic_open(Path(path), "w") as f:
        f.write("<?xml version='1.0' encoding='utf-8'?>\n<testsuites>\n")
        f.write(
            f'  <testsuite name="memcomp compare" tests="{len(individual) + len(summary)}" '
            f'failures="{cmp.n_regressions}" errors="0" skipped="{skipped}">\n'
        )
        step = 20_000
        for start in range(0, len(individual), step):
            for c in cmp.rows(individual.iloc[start : start + step]):
                text = (
                    f"{c.metric}: {fmt_value(c.metric, c.base)} -> {fmt_value(c.metric, c.new)} "
                    f"({fmt_change(c)}), {c.verdict}; {c.test}"
                )
                kind = kinds.get(c.verdict, "system-out")
                f.write(_case(f"memcomp.compare.{c.metric}", c.cell, kind, text))
        for (metric, verdict), n in summary:
            text = f"{metric}: {n} cells {verdict} (every row: memcomp compare --csv FILE)"
            kind = "skipped" if verdict == NA else "system-out"
            f.write(_case(f"memcomp.compare.{metric}", f"{n} cells {verdict}", kind, text))
        f.write("  </testsuite>\n</testsuites>\n")
