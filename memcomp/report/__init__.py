"""``memcomp report``: tables and plots from a results folder.

``build_report(results_dir)`` reads runs.csv, curves.csv, episodes.csv and manifest.json once
(:class:`memcomp.report.sections.ReportInput`), builds every registered report section
(:mod:`memcomp.report.sections`: the built-ins and plugins), writes their tables (md/tex/csv) and
figures (PNG and SVG) into ``results_dir/report`` and returns a :class:`Report`;
``print_report(report, console)`` shows it with rich. Every file is written atomically
(:mod:`memcomp.fsutil`), so a killed report leaves whole files. Parameters are read from the
results schema (:mod:`memcomp.results.schema`); folders of the previous layout are mapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.fsutil import atomic_open, atomic_write_text
from memcomp.report.sections import (
    REPORT_SECTIONS,
    Figure,
    ReportInput,
    Section,
    SectionOutput,
    build_sections,
    report_section,
)
from memcomp.report.tables import Table, to_latex, to_markdown
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW

__all__ = [
    "FORMATS", "REPORT_SECTIONS", "Figure", "Report", "ReportInput", "SectionOutput", "Table",
    "build_report", "print_report", "report_section",
]  # fmt: skip

FORMATS = ("md", "tex", "csv")


@dataclass
class Report:
    """What ``build_report`` produced: header lines, tables, written files and notes, the tidy
    data of each figure by its file stem (``memory``, ``val_vs_time``: what the plot drew,
    reused by report.html's interactive charts), each section's output and the input read."""

    header: list[str]
    tables: list[Table]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure_data: dict[str, pd.DataFrame] = field(default_factory=dict)
    # each section with what it built, in report order (report.html renders these)
    sections: list[tuple[Section, SectionOutput]] = field(default_factory=list)
    source: ReportInput | None = field(default=None, repr=False)  # what it was built from

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
        counts = runs["status"].astype(object).fillna("ok").value_counts()
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
    """Build every registered section (:mod:`memcomp.report.sections`) the results allow and
    write its tables and figures into ``out``.

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
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"build_report: unknown formats {bad}; choose from {list(FORMATS)}")
    results_dir = Path(results_dir)
    inp = ReportInput.read(results_dir, fraction, window, patience)
    out = Path(out) if out is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".*.tmp"):  # left by a report killed between writing and renaming
        tmp.unlink(missing_ok=True)
    header = _header(results_dir, inp.manifest, inp.raw_runs)
    report = Report(header=header, tables=[], notes=list(inp.notes), source=inp)
    if inp.runs.empty:
        report.notes.append("runs.csv is missing or empty: nothing to report.")
        return report
    for section, built in build_sections(inp):
        report.sections.append((section, built))
        report.tables += [t for t in built.tables if not t.data.empty]
        report.notes += built.notes
        for figure in built.figures:
            save_figure(figure.fig, out, figure.stem, report.files)
            if figure.data is not None:
                report.figure_data[figure.stem] = figure.data
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
