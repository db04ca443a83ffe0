"""``memcomp report``: tables and plots from a results folder.

``build_report(results_dir)`` reads runs.csv, curves.csv, episodes.csv and manifest.json, writes
tables (md/tex/csv) and figures (PNG and SVG) into ``results_dir/report`` and returns a
:class:`Report`; ``print_report(report, console)`` shows it with rich. Every file is written
atomically (:mod:`memcomp.fsutil`), so a killed report leaves whole files. Parameters are read from
the results schema (:mod:`memcomp.results.schema`); folders of the previous layout are mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.fsutil import atomic_open, atomic_write_text
from memcomp.report.precision_tables import precision_table
from memcomp.report.tables import (
    Table,
    accuracy_table,
    memory_table,
    paper_table,
    reduction_table,
    time_table,
    to_latex,
    to_markdown,
    tta_table,
)
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW
from memcomp.results.store import CorruptResultsError, ResultsDir

__all__ = ["FORMATS", "Report", "Table", "build_report", "print_report"]

FORMATS = ("md", "tex", "csv")


@dataclass
class Report:
    """What ``build_report`` produced: header lines, tables, written files and notes, and the
    tidy data of each figure by its file stem (``memory``, ``val_vs_time``: what the plot drew,
    reused by report.html's interactive charts)."""

    header: list[str]
    tables: list[Table]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure_data: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        """The table called ``name`` (e.g. ``accuracy``)."""
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(
            f"Report.table({name!r}): no such table; have {[t.name for t in self.tables]}"
        )


def _versions(manifest: dict[str, Any], runs: pd.DataFrame) -> str:
    v = manifest.get("versions")
    made = v.get("memcomp") if isinstance(v, dict) else None
    made = made or manifest.get("memcomp_version") or manifest.get("memcomp")
    found = []
    if "memcomp_version" in runs.columns:
        found = sorted(str(x) for x in runs["memcomp_version"].dropna().unique())
    if not made:
        return ", ".join(found) if found else "unknown (not recorded)"
    extra = [f for f in found if f != str(made)]
    return str(made) + (f" (some rows by {', '.join(extra)})" if extra else "")


def _header(results_dir: Path, manifest: dict[str, Any], runs: pd.DataFrame) -> list[str]:
    lines = [f"results: {results_dir}"]
    lines.append(f"suite: {manifest.get('suite', 'unknown')}")
    lines.append(f"made by memcomp {_versions(manifest, runs)}")
    v = manifest.get("versions")
    others = {k: x for k, x in v.items() if k != "memcomp"} if isinstance(v, dict) else {}
    for k in ("torch_version", "cuda_version", "python_version"):
        if manifest.get(k):
            others[k.removesuffix("_version")] = manifest[k]
    if manifest.get("git_commit"):
        others["git"] = str(manifest["git_commit"])[:12]
    if others:
        lines.append("versions: " + ", ".join(f"{k} {x}" for k, x in others.items()))
    dev = manifest.get("device")
    if isinstance(dev, dict):
        dev = ", ".join(map(str, dev.values()))
    name = manifest.get("device_name")
    if not name and "device_name" in runs.columns and runs["device_name"].notna().any():
        name = ", ".join(sorted(str(x) for x in runs["device_name"].dropna().unique()))
    dev = " ".join(str(x) for x in (dev, f"({name})" if name else None) if x)
    if dev:
        lines.append(f"device: {dev}")
    if manifest.get("started_at"):
        lines.append(f"started: {manifest['started_at']}")
    if "status" in runs.columns and len(runs):
        counts = runs["status"].fillna("ok").value_counts()
        lines.append("runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return lines


def save_figure(fig: Any, out: Path, stem: str, files: list[Path]) -> None:
    import matplotlib.pyplot as plt

    for ext in ("png", "svg"):
        path = out / f"{stem}.{ext}"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=120, format=ext)
        files.append(path)
    plt.close(fig)


def build_report(
    results_dir: Path,
    out: Path | None = None,
    formats: Sequence[str] = ("md", "csv"),
    fraction: float = FRACTION,
    window: int = WINDOW,
    patience: int = PATIENCE,
) -> Report:
    """Build every table and figure the results allow and write them into ``out``.

    Args:
        results_dir: a folder written by :class:`memcomp.results.ResultsDir`.
        out: output folder (default ``results_dir / "report"``).
        formats: table formats to write, a subset of md, tex, csv. Figures are always PNG + SVG.
        fraction, window, patience: time-to-accuracy parameters (paper: 0.9, 3, 5).

    Returns:
        The :class:`Report`. Missing curves or memory data skip those outputs with a note; an
        unreadable manifest.json is a note too (the tables come from runs.csv). A corrupt
        runs.csv, curves.csv or episodes.csv raises :class:`CorruptResultsError` (exit 2).
    """
    from memcomp.report.plots import plot_memory, plot_val_vs_time

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"build_report: unknown formats {bad}; choose from {list(FORMATS)}")
    results_dir = Path(results_dir)
    rd = ResultsDir(results_dir)
    notes = []
    try:
        manifest = rd.manifest()
    except CorruptResultsError as e:
        manifest = {}
        notes.append(f"{e}: header details skipped, tables come from runs.csv")
    runs, curves, episodes = rd.runs(manifest), rd.curves(), rd.episodes()
    out = Path(out) if out is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".*.tmp"):  # left by a report killed between writing and renaming
        tmp.unlink(missing_ok=True)
    report = Report(header=_header(results_dir, manifest, runs), tables=[], notes=notes)
    if runs.empty:
        report.notes.append("runs.csv is missing or empty: nothing to report.")
        return report

    report.tables.append(accuracy_table(runs, episodes))
    mem = memory_table(runs)
    if mem.data.empty:
        report.notes.append(
            "no peak-memory data (peak_mem_mb per inner_steps K): memory table and plot skipped."
        )
    else:
        report.tables.append(mem)
        red = reduction_table(runs)
        if red.data.empty:
            report.notes.append("no maml/anil memory at matching K: reduction table skipped.")
        else:
            report.tables.append(red)
        fig, report.figure_data["memory"] = plot_memory(runs)
        save_figure(fig, out, "memory", report.files)
    precision = precision_table(runs)  # cells differing only in precision, if any
    if not precision.data.empty:
        report.tables.append(precision)
    has_curves = {"cell_id", "iteration", "train_seconds", "val_acc"} <= set(curves.columns)
    if not has_curves or curves.empty:
        report.notes.append("no validation curves: time-to-accuracy and accuracy-vs-time skipped.")
    else:
        report.tables.append(tta_table(runs, curves, fraction, window, patience))
        fig, report.figure_data["val_vs_time"] = plot_val_vs_time(runs, curves, fraction)
        save_figure(fig, out, "val_vs_time", report.files)
    report.tables.append(time_table(runs))
    ref = paper_table(runs)
    if not ref.data.empty:
        report.tables.append(ref)
    write_tables(report, out, formats)
    return report


def write_tables(report: Report, out: Path, formats: Sequence[str]) -> None:
    md = ["# memcomp report", ""] + [f"- {h}" for h in report.header] + [""]
    for t in report.tables:
        if "csv" in formats:
            path = out / f"{t.name}.csv"
            atomic_write_text(path, t.tidy.to_csv(index=False))
            report.files.append(path)
        if "tex" in formats:
            path = out / f"{t.name}.tex"
            atomic_write_text(path, to_latex(t.data, f"{t.title}. {t.note}".strip()))
            report.files.append(path)
        if "md" in formats:
            text = f"## {t.title}\n\n{to_markdown(t.data)}\n{t.note}\n"
            path = out / f"{t.name}.md"
            atomic_write_text(path, text)
            report.files.append(path)
            md.append(text)
    if "md" in formats:
        md += [f"![{p.stem}]({p.name})\n" for p in report.files if p.suffix == ".png"]
        md += [f"> {n}\n" for n in report.notes]
        path = out / "report.md"
        atomic_write_text(path, "\n".join(md))
        report.files.append(path)


def print_report(report: Report, console: Any) -> None:
    """Render ``report`` on a rich ``Console``: header, each table with its note, then notes."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    for line in report.header:
        console.print(escape(line))
    for t in report.tables:
        rt = RichTable(title=escape(t.title), title_justify="left")
        for c in t.data.columns:
            rt.add_column(escape(str(c)))
        for row in t.data.itertuples(index=False):
            rt.add_row(*[escape("" if pd.isna(v) else str(v)) for v in row])
        console.print(rt)
        if t.note:
            console.print(f"[dim]{escape(t.note)}[/dim]")
        console.print()
    for n in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(n)}")
    if report.files:
        console.print(escape(f"wrote {len(report.files)} files to {report.files[0].parent}"))
