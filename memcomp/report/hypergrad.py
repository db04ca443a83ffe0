"""Report of a diagnostics folder (``memcomp diagnose``): every learner's hypergradient error
against the exact one, as a table and as error-versus-memory and error-versus-time plots.

``memcomp report results/diagnose`` reads ``hypergrad-error.csv`` and writes
``report/hypergrad_error.{md,csv,tex}``, ``report/hypergrad_error.{png,svg}``, ``report/report.md``
and ``report/report.html``. No torch: a diagnostics folder is reported anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from memcomp.fsutil import atomic_write_text  # noqa: E402
from memcomp.report import Report, save_figure, write_tables  # noqa: E402
from memcomp.report.htmlkit import esc, page, plot_block, table_html  # noqa: E402
from memcomp.report.tables import Table  # noqa: E402
from memcomp.results.store import CorruptResultsError  # noqa: E402

HYPERGRAD_CSV = "hypergrad-error.csv"
REQUIRED = ("learner", "varies", "rel_error", "cosine", "sec_per_meta_grad", "peak_mem_mb")
NUMERIC = ("rel_error", "cosine", "sec_per_meta_grad", "peak_mem_mb")
KNOBS = {"K": "learner.inner_steps", "N": "learner.cg_steps", "lambda": "learner.lam"}
FLOOR = 1e-16  # exact methods: drawn at the float64 floor on the log axis


def is_diagnostics_folder(path: Path) -> bool:
    """A folder written by ``memcomp diagnose`` (and not a run folder)."""
    return (path / HYPERGRAD_CSV).is_file() and not (path / "runs.csv").exists()


def read_hypergrad(folder: Path) -> pd.DataFrame:
    """The rows of ``folder/hypergrad-error.csv``; a file that cannot be used raises
    :class:`CorruptResultsError` naming it and what is wrong."""
    path = Path(folder) / HYPERGRAD_CSV
    try:
        rows = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise CorruptResultsError(
            f"{path}: unreadable ({type(e).__name__}: {e}); run `memcomp diagnose --out "
            f"{Path(folder)}` again"
        ) from None
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise CorruptResultsError(
            f"{path}: missing columns {', '.join(missing)}; it was not written by "
            f"`memcomp diagnose` (run it again: memcomp diagnose --out {Path(folder)})"
        )
    for c in NUMERIC:
        rows[c] = pd.to_numeric(rows[c], errors="coerce")
    rows["varies"] = rows["varies"].fillna("").astype(str)
    return rows


def knob_value(row: pd.Series) -> str:
    """The value of the swept knob of a row (``K = 20``), or the variant (``hvp=forward``)."""
    col = KNOBS.get(str(row["varies"]))
    if col is None or col not in row.index or pd.isna(row[col]):
        return str(row["varies"])
    value = row[col]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{row['varies']} = {text}"


def hypergrad_table(rows: pd.DataFrame) -> Table:
    """One line per diagnosed configuration, in the sweep's order."""
    tidy = pd.DataFrame(
        {
            "learner": rows["learner"].astype(str),
            "setting": [knob_value(r) for _, r in rows.iterrows()],
            "rel_error": rows["rel_error"],
            "cosine": rows["cosine"],
            "peak_mem_mb": rows["peak_mem_mb"],
            "sec_per_meta_grad": rows["sec_per_meta_grad"],
        }
    )
    for c in ("lower_grad_norm", "cg_residual"):
        if c in rows.columns:
            tidy[c] = pd.to_numeric(rows[c], errors="coerce")
    shown = tidy.copy()
    for c in shown.columns[2:]:
        shown[c] = [("" if pd.isna(v) else f"{v:.3g}") for v in tidy[c]]
    note = (
        "relative error and cosine of each learner's meta-gradient against the exact "
        "hypergradient of its own bilevel problem (same weights and tasks); peak memory is the "
        "CPU estimate, seconds are per meta-gradient on this machine"
    )
    title = "Hypergradient error against cost"
    return Table("hypergrad_error", title, shown, tidy, note)


def plot_error_frontier(rows: pd.DataFrame) -> Figure:
    """Two panels: relative error (log) against peak memory and against seconds per
    meta-gradient, one line per learner and swept knob."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    for (learner, varies), group in rows.groupby(["learner", "varies"], sort=False):
        label = f"{learner} ({varies})" if varies else learner
        err = group["rel_error"].clip(lower=FLOOR)
        for ax, x in zip(axes[0], ("peak_mem_mb", "sec_per_meta_grad"), strict=True):
            ax.plot(group[x], err, marker="o", label=label)
    for ax, name in zip(axes[0], ("peak memory (MB, CPU estimate)", "seconds per meta-gradient"),
                        strict=True):  # fmt: skip
        ax.set_xlabel(name)
        ax.set_ylabel("relative error vs exact hypergradient")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="best")
    fig.suptitle("Hypergradient error against cost (same weights and tasks)")
    fig.tight_layout()
    return fig


def build_hypergrad_report(
    folder: Path, out: Path | None = None, formats: Sequence[str] = ("md", "csv"), html: bool = True
) -> Report:
    """Write the diagnostics report of ``folder`` into ``out`` (default ``folder/report``) and
    return it as a :class:`memcomp.report.Report`."""
    folder = Path(folder)
    rows = read_hypergrad(folder)
    out = Path(out) if out is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    header = [f"diagnostics: {folder}", f"{len(rows)} configurations from {HYPERGRAD_CSV}"]
    report = Report(header, [hypergrad_table(rows)])
    plotted = rows.dropna(subset=["rel_error", "peak_mem_mb", "sec_per_meta_grad"])
    if len(plotted) < len(rows):
        n = len(rows) - len(plotted)
        report.notes.append(
            f"{n} row{'s' if n > 1 else ''} without error, memory or time "
            f"{'are' if n > 1 else 'is'} not plotted"
        )
    if len(plotted):
        save_figure(plot_error_frontier(plotted), out, "hypergrad_error", report.files)
    write_tables(report, out, formats)
    if html:
        atomic_write_text(out / "report.html", hypergrad_html(folder, report))
        report.files.append(out / "report.html")
    return report


def hypergrad_html(folder: Path, report: Report) -> str:
    """The diagnostics page: the figure (inline SVG) and the sortable table."""
    table = report.tables[0]
    svg = next((p for p in report.files if p.suffix == ".svg"), None)
    body = plot_block(svg.read_text(), "hypergradient error vs memory and time") if svg else ""
    body += table_html(table.data, "table-hypergrad_error", ("learner",), table.note)
    notes = "".join(f'<p class="note">note: {esc(n)}</p>' for n in report.notes)
    header = f"<h1>memcomp diagnostics</h1><p>{esc(folder)}</p>{notes}"
    return page("memcomp diagnostics", header, [("hypergrad", table.title, body)])


__all__ = [
    "HYPERGRAD_CSV",
    "build_hypergrad_report",
    "hypergrad_table",
    "is_diagnostics_folder",
    "plot_error_frontier",
    "read_hypergrad",
]
