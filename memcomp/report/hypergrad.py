"""Report of a diagnostics folder (``memcomp diagnose``): every learner's hypergradient error
against the exact one, as a table and as error-versus-memory and error-versus-time plots, and
the rounding error of every learner's meta-gradient in float32 / tf32 / bf16 against its float64
one (rows with ``varies == "precision"``), as a table beside the approximation error and a plot.

``memcomp report results/diagnose`` reads ``hypergrad-error.csv`` and writes
``report/hypergrad_error.{md,csv,tex,png,svg}``, ``report/rounding_error.{md,csv,tex,png,svg}``
(when the CSV has rounding rows), ``report/report.md`` and ``report/report.html``. No torch: a
diagnostics folder is reported anywhere.
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
ROUNDING = "precision"  # the ``varies`` of rounding rows
LOWER = ("float32", "tf32", "bf16")  # precisions measured against float64
ROUNDING_NUMERIC = ("rounding_error", "rounding_cosine", "exact_norm", "grad_norm")


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
    for c in NUMERIC + tuple(c for c in ROUNDING_NUMERIC if c in rows.columns):
        rows[c] = pd.to_numeric(rows[c], errors="coerce")
    rows["varies"] = rows["varies"].fillna("").astype(str)
    return rows


def hypergrad_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The hypergradient-error rows (float64, against the exact hypergradient)."""
    return rows[rows["varies"] != ROUNDING].reset_index(drop=True)


def rounding_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rounding rows: one per learner configuration and precision."""
    out = rows[rows["varies"] == ROUNDING].reset_index(drop=True)
    for c in ("precision", "status"):
        out[c] = out[c].fillna("").astype(str) if c in out.columns else ""
    return out


def config_label(row: pd.Series) -> str:
    """``maml K=20`` (``imaml K=20 N=20``): a rounding row's learner and its step counts."""
    parts = [str(row["learner"])]
    for short, col in (("K", "learner.inner_steps"), ("N", "learner.cg_steps")):
        if col in row.index and pd.notna(row[col]) and str(row["learner"]) != "r2d2":
            parts.append(f"{short}={int(row[col])}")
    return " ".join(parts)


def _g(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.2g}"


def rounding_table(rows: pd.DataFrame) -> Table:
    """One line per learner configuration: its approximation error (float64 against the exact
    hypergradient, where one exists) beside the rounding error and cosine of each lower
    precision against its own float64 meta-gradient, and bf16's memory relative to float32."""
    rows = rounding_rows(rows)
    labels = [config_label(r) for _, r in rows.iterrows()]
    rows = rows.assign(config=labels)
    tidy_cols = ["config", "learner", "precision", "status", "rounding_error", "rounding_cosine"]
    tidy_cols += ["rel_error", "cosine", "peak_mem_mb", "sec_per_meta_grad"]
    tidy = rows.reindex(columns=tidy_cols)
    lines = []
    for config, sub in rows.groupby("config", sort=False):
        by = {str(r["precision"]): r for _, r in sub.iterrows()}
        f64 = by.get("float64")
        line = {"learner": config, "float64 vs exact": _g(f64["rel_error"]) if f64 is not None
                else ""}  # fmt: skip
        if line["float64 vs exact"] == "":
            line["float64 vs exact"] = "no reference"
        for p in LOWER:
            r = by.get(p)
            if r is None:
                line[f"{p} rounding"] = line[f"{p} cosine"] = "-"
            elif r["status"] != "ok":
                line[f"{p} rounding"], line[f"{p} cosine"] = r["status"], ""
            else:
                line[f"{p} rounding"] = _g(r["rounding_error"])
                line[f"{p} cosine"] = f"{r['rounding_cosine']:.4f}"
        mem = {p: by[p]["peak_mem_mb"] for p in ("float32", "bf16") if p in by}
        ok = len(mem) == 2 and all(pd.notna(v) and v > 0 for v in mem.values())
        line["bf16 / float32 peak"] = f"{mem['bf16'] / mem['float32']:.2f}" if ok else ""
        lines.append(line)
    note = (
        "rounding: ||g_p - g_float64|| / ||g_float64|| and cosine of each learner's "
        "meta-gradient in precision p against its own float64 one, same weights and tasks; "
        "float64 vs exact: the approximation error against the exact hypergradient of the "
        "learner's bilevel problem; bf16 / float32 peak: ratio of the meta-gradient's peak "
        "memory above weights and tasks; 'CUDA only': tf32 needs a CUDA GPU"
    )
    return Table(
        "rounding_error", "Rounding error of the meta-gradient by precision", pd.DataFrame(lines),
        tidy, note,
    )  # fmt: skip


def plot_rounding(rows: pd.DataFrame) -> Figure:
    """Rounding error (log) per learner configuration, one bar per lower precision, with the
    float64 approximation error (against the exact hypergradient) as a marker."""
    rows = rounding_rows(rows)
    rows = rows.assign(config=[config_label(r) for _, r in rows.iterrows()])
    rows = rows.drop_duplicates(["config", "precision"], keep="last")
    configs = list(dict.fromkeys(rows["config"]))
    shown = [p for p in LOWER if ((rows["precision"] == p) & (rows["status"] == "ok")).any()]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(configs) + 2), 4.2))
    width = 0.8 / max(1, len(shown))
    for i, p in enumerate(shown):
        sub = rows[(rows["precision"] == p) & (rows["status"] == "ok")].set_index("config")
        xs = [
            j + (i - (len(shown) - 1) / 2) * width for j, c in enumerate(configs) if c in sub.index
        ]
        ys = [max(float(sub.at[c, "rounding_error"]), FLOOR) for c in configs if c in sub.index]
        ax.bar(xs, ys, width, label=f"{p} vs float64")
    f64 = rows[(rows["precision"] == "float64") & rows["rel_error"].notna()].set_index("config")
    xs = [j for j, c in enumerate(configs) if c in f64.index]
    ys = [max(float(f64.at[c, "rel_error"]), FLOOR) for c in configs if c in f64.index]
    if xs:
        ax.plot(xs, ys, "k_", markersize=18, mew=2, linestyle="none",
                label="float64 vs exact hypergradient")  # fmt: skip
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=35, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative error of the meta-gradient")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    missing = [p for p in LOWER if p not in shown and (rows["precision"] == p).any()]
    title = "Rounding error by precision (same weights and tasks)"
    if missing:
        title += f"; not run here: {', '.join(missing)}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


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
    every = read_hypergrad(folder)
    rows, rounding = hypergrad_rows(every), rounding_rows(every)
    out = Path(out) if out is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    header = [f"diagnostics: {folder}"]
    if len(rows):
        header.append(f"{len(rows)} configurations from {HYPERGRAD_CSV}")
    if len(rounding):
        header.append(f"{len(rounding)} rounding rows (configuration x precision)")
    report = Report(header, [hypergrad_table(rows)] if len(rows) else [])
    plotted = rows.dropna(subset=["rel_error", "peak_mem_mb", "sec_per_meta_grad"])
    if len(plotted) < len(rows):
        n = len(rows) - len(plotted)
        report.notes.append(
            f"{n} row{'s' if n > 1 else ''} without error, memory or time "
            f"{'are' if n > 1 else 'is'} not plotted"
        )
    if len(plotted):
        save_figure(plot_error_frontier(plotted), out, "hypergrad_error", report.files)
    if len(rounding):
        report.tables.append(rounding_table(rounding))
        save_figure(plot_rounding(rounding), out, "rounding_error", report.files)
        if not ((rounding["precision"] == "tf32") & (rounding["status"] == "ok")).any():
            report.notes.append("tf32 rows: CUDA only (diagnose ran on a CPU)")
    write_tables(report, out, formats)
    if html:
        atomic_write_text(out / "report.html", hypergrad_html(folder, report))
        report.files.append(out / "report.html")
    return report


def hypergrad_html(folder: Path, report: Report) -> str:
    """The diagnostics page: per table its figure (inline SVG) and the sortable table."""
    captions = {
        "hypergrad_error": ("hypergrad", "hypergradient error vs memory and time"),
        "rounding_error": ("rounding", "rounding error of the meta-gradient by precision"),
    }
    sections = []
    for table in report.tables:
        key, caption = captions.get(table.name, (table.name, table.title))
        svg = next((p for p in report.files if p.name == f"{table.name}.svg"), None)
        body = plot_block(svg.read_text(), caption) if svg else ""
        body += table_html(table.data, f"table-{table.name}", ("learner",), table.note)
        sections.append((key, table.title, body))
    notes = "".join(f'<p class="note">note: {esc(n)}</p>' for n in report.notes)
    header = f"<h1>memcomp diagnostics</h1><p>{esc(folder)}</p>{notes}"
    return page("memcomp diagnostics", header, sections)


__all__ = [
    "HYPERGRAD_CSV",
    "build_hypergrad_report",
    "hypergrad_rows",
    "hypergrad_table",
    "is_diagnostics_folder",
    "plot_error_frontier",
    "plot_rounding",
    "read_hypergrad",
    "rounding_rows",
    "rounding_table",
]
