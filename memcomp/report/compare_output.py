"""What ``memcomp compare`` shows: formatted values, the rich table and JUnit XML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from memcomp.fsutil import atomic_write_text
from memcomp.report.compare import IMPROVEMENT, NA, REGRESSION, WITHIN, Change, Comparison

__all__ = ["fmt_change", "fmt_value", "print_comparison", "write_junit"]


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
    if isinstance(c.change, float) and math.isnan(c.change):
        return "–"
    if c.metric == "accuracy":
        return f"{c.change:+.2f} pp"
    return f"{100 * c.change:+.1f}%"


def print_comparison(cmp: Comparison, console: Any) -> None:
    """The comparison on a rich console: one row per cell and metric, then a summary line."""
    from rich.markup import escape
    from rich.table import Table

    colour = {REGRESSION: "bold red", IMPROVEMENT: "green", WITHIN: "", NA: "dim"}
    table = Table(title=escape(f"memcomp compare {cmp.base} -> {cmp.new}"), title_justify="left")
    for col in ("cell", "metric", "base", "new", "change", "verdict", "test"):
        table.add_column(col, overflow="fold")
    for c in cmp.changes:
        style = colour.get(c.verdict, "")
        verdict = f"[{style}]{c.verdict}[/]" if style else c.verdict
        values = [c.cell, c.metric, fmt_value(c.metric, c.base), fmt_value(c.metric, c.new)]
        table.add_row(*map(escape, values), fmt_change(c), verdict, escape(c.test))
    console.print(table)
    by_how: dict[str, int] = {}
    for _, _, how in cmp.matched:
        by_how[how] = by_how.get(how, 0) + 1
    console.print(
        f"matched {len(cmp.matched)} cells ("
        + ", ".join(f"{n} by {h}" for h, n in by_how.items())
        + f"); only in base: {len(cmp.only_base)}, only in new: {len(cmp.only_new)}"
    )
    n = len(cmp.regressions)
    console.print(
        f"[bold red]{n} regression(s)[/]" if n else "[green]no regression[/] beyond noise"
    )


def write_junit(cmp: Comparison, path: Path) -> None:
    """JUnit XML: one testcase per cell and metric; a regression is a failure."""
    suite = ET.Element(
        "testsuite",
        name="memcomp compare",
        tests=str(len(cmp.changes)),
        failures=str(len(cmp.regressions)),
        errors="0",
        skipped=str(sum(c.verdict == NA for c in cmp.changes)),
    )
    for c in cmp.changes:
        kind = f"memcomp.compare.{c.metric}"
        case = ET.SubElement(suite, "testcase", classname=kind, name=c.cell)
        text = (
            f"{c.metric}: {fmt_value(c.metric, c.base)} -> {fmt_value(c.metric, c.new)} "
            f"({fmt_change(c)}), {c.verdict}; {c.test}"
        )
        if c.verdict == REGRESSION:
            ET.SubElement(case, "failure", message=text, type="Regression").text = text
        elif c.verdict == NA:
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write_text(
        Path(path), ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
    )
