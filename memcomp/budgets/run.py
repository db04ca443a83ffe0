"""``memcomp check``: measure every budget of a file, print the table, exit 1 on a regression."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memcomp.budgets.junit import write_junit
from memcomp.budgets.measure import VERDICTS, Measure, Outcome, check_budgets, measured_source
from memcomp.budgets.spec import load_budgets
from memcomp.budgets.update import update_file
from memcomp.errors import InputError


def _table(outcomes: Sequence[Outcome], title: str) -> Table:
    table = Table(title=escape(title))
    table.add_column("#", justify="right")
    table.add_column("budget (cell)", overflow="fold")
    table.add_column("source")
    table.add_column("MB", justify="right")
    table.add_column("budget MB", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("verdict")
    style = {"ok": "green", "exceeded": "bold red", "error": "bold red", "skipped": "yellow"}
    for o in outcomes:
        b = o.budget
        margin = "-"
        if o.measured_mb is not None and o.allowed_mb:
            margin = f"{100 * (o.allowed_mb - o.measured_mb) / o.allowed_mb:+.1f}%"
        color = style.get(o.verdict, "")
        table.add_row(
            str(b.index),
            escape(str(b.label)),
            escape(str(o.source)),
            "-" if o.measured_mb is None else f"{o.measured_mb:.3f}",
            "-" if o.allowed_mb is None else f"{o.allowed_mb:.3f}",
            margin,
            f"[{color}]{o.verdict}[/]" if color else o.verdict,
        )
    return table


def run_check(
    path: Path | str,
    update: bool = False,
    junit: Path | str | None = None,
    device: str = "auto",
    console: Console | None = None,
    measure: Measure | None = None,
) -> int:
    """Measure every budget in ``path``; 1 if any is exceeded (or fails to run), else 0.

    The device's memory source is measured (``cuda`` on a GPU, else ``cpu-estimate``) and each
    budget judged by that source's numbers. Bad input raises :class:`InputError` (exit 2).
    ``--update`` rewrites that source's baselines from this run, keeping the other source's (and
    then passes); ``measure`` replaces the runner's measurement (tests).
    """
    console = console or Console()
    path = Path(path)
    budgets = load_budgets(path, require_baselines=not update)
    if update:
        for where in (path, path.parent):  # before measuring: refuse now, not after minutes
            if not os.access(where, os.W_OK):
                raise InputError(
                    f"{path}: cannot --update: {where} is not writable (read-only file or file "
                    "system); make it writable or check without --update"
                )
    dev, source = measured_source(device)
    outcomes = check_budgets(budgets, device, measure, update=update)
    if update:
        for o in outcomes:
            if o.verdict in ("ok", "exceeded", "recorded"):
                o.verdict, o.message = "recorded", f"{source} baseline_mb <- {o.measured_mb:.3f}"
    console.print(_table(outcomes, f"memory budgets: {path} (memory source {source}, on {dev})"))
    for o in outcomes:
        if o.message and o.verdict in ("exceeded", "error", "skipped"):
            console.print(
                f"[{o.budget.index}] {o.budget.label}: {o.verdict}: {o.message}",
                markup=False,
                highlight=False,
            )
    if junit is not None:
        write_junit(outcomes, junit, path.stem, source)
    if update:
        n = update_file(path, budgets, outcomes, source)
        console.print(escape(f"updated {n} {source} baseline(s) in {path} (other sources kept)"))
    n = {v: sum(o.verdict == v for o in outcomes) for v in VERDICTS}
    console.print(
        f"{n['ok']} within budget, {n['exceeded']} exceeded, {n['error']} failed to run, "
        f"{n['skipped']} skipped"
        + (f", {n['recorded']} recorded" if n["recorded"] else "")
        + f" (memory source {source})"
    )
    return 1 if any(o.failed for o in outcomes) else 0
