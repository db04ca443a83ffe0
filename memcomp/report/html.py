"""``report.html``: one self-contained page per results folder (inline CSS, script and SVG; no
network needed to open it). Built from the :class:`memcomp.report.Report`: provenance and suite
text, then one section per registered report section (:mod:`memcomp.report.sections`: accuracy,
memory versus K, precision, accuracy versus wall-clock and time to accuracy, per-phase memory, the
paper reference, plugin sections), then every cell, the failed cells with their log tail, and
one section per cell. With ``plots="interactive"`` the memory and
accuracy-vs-time figures are plotly charts (:mod:`memcomp.report.interactive`) drawn from the same
tidy data as the static SVGs; everything else is the same page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.fsutil import atomic_write_text
from memcomp.report.htmlkit import esc, line_svg, page, plot_block, table_html
from memcomp.report.plots import variant_styles
from memcomp.report.sections import Figure, ReportInput
from memcomp.report.tables import Table

__all__ = ["LOG_TAIL_LINES", "PLOTS", "html_report", "page_plots", "write_html_report"]

PLOTS = ("static", "interactive")  # ``memcomp report --plots``
PLOTS_META = "memcomp-plots"  # <meta name=...> that marks an interactive page (index.py reads it)

LOG_TAIL_LINES = 40
INLINE_CELLS = 500  # cells shown row by row in the page; all of them are in cells.csv beside it
CELLS_CSV = "cells.csv"
_PROVENANCE = [
    ("suite", "suite"), ("memcomp", "memcomp_version"), ("torch", "torch_version"),
    ("Python", "python_version"), ("CUDA", "cuda_version"), ("platform", "platform"),
    ("device", "device"), ("device name", "device_name"), ("git commit", "git_commit"),
    ("started", "started_at"), ("results schema", "results_schema"),
]  # fmt: skip
CELL_COLUMNS = ["cell_id", "label", "learner", "dataset", "setting", "variant", "seed"]
CELL_COLUMNS += ["status", "test_acc", "peak_mem_mb", "sec_per_iter", "train_seconds"]


def _kv(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _manifest_value(manifest: dict[str, Any], key: str) -> Any:
    v = manifest.get(key)
    versions = manifest.get("versions")
    if v is None and isinstance(versions, dict):
        v = versions.get(key.removesuffix("_version"))
    return ", ".join(map(str, v.values())) if isinstance(v, dict) else v


def _provenance(manifest: dict[str, Any]) -> str:
    pairs = [(k, _manifest_value(manifest, key)) for k, key in _PROVENANCE]
    out = _kv([(k, v) for k, v in pairs if v not in (None, "")])
    options = manifest.get("options")
    if isinstance(options, dict) and options:
        out += f"<details><summary>run options</summary>{_kv(sorted(options.items()))}</details>"
    text = manifest.get("suite_text")
    if text:
        out += (
            '<details id="suite-text"><summary>suite file</summary>'
            f"<pre>{esc(text)}</pre></details>"
        )
    else:
        out += '<p class="note">the manifest does not record the suite text.</p>'
    return out


def _table(t: Table) -> str:
    if t.data.empty:
        return ""
    return f"<h3>{esc(t.title)}</h3>" + table_html(t.data, f"table-{t.name}", t.filters, t.note)


def _svg_file(files: list[Path], stem: str, caption: str, block_id: str) -> str:
    path = next((p for p in files if p.name == f"{stem}.svg" and p.exists()), None)
    return plot_block(path.read_text(), caption, block_id) if path else ""


class _Figures:
    """Each figure's block: the SVG written beside the page inline, or (``interactive``) a plotly
    chart drawn from the figure's tidy data where there is a chart for it."""

    def __init__(self, report: Any, runs: pd.DataFrame, plots: str) -> None:
        self.report, self.runs, self.charts = report, runs, None
        if plots == "interactive":
            from memcomp.report.interactive import Charts

            self.charts = Charts()  # page order: the first chart carries plotly.js

    def block(self, figure: Figure) -> str:
        static = _svg_file(self.report.files, figure.stem, figure.caption, figure.block_id)
        data = figure.data
        if self.charts is None or data is None or not len(data):
            return static
        from memcomp.report.interactive import memory_figure, val_vs_time_figure

        if figure.stem == "memory":
            chart = memory_figure(data)
        elif figure.stem == "val_vs_time":
            chart = val_vs_time_figure(data, variant_styles(self.runs))
        else:
            return static
        return self.charts.block(chart, figure.block_id, figure.caption)


def _section_blocks(report: Any, runs: pd.DataFrame, plots: str) -> list[tuple[str, str, str]]:
    """One page section per registered report section that built something (or has a
    placeholder): its figures, then its tables."""
    figures = _Figures(report, runs, plots)
    out = []
    for section, built in report.sections:
        body = "".join(figures.block(f) for f in built.figures)
        body += "".join(_table(t) for t in built.tables)
        if not body and section.placeholder is None:
            continue
        out.append((section.name, section.title, body or section.placeholder))
    return out


def _cells_frame(runs: pd.DataFrame) -> pd.DataFrame:
    df = runs.copy()
    acc = pd.to_numeric(df["test_acc"], errors="coerce")
    ci = pd.to_numeric(df["test_ci95"], errors="coerce")
    df["test_acc"] = [
        "" if math.isnan(a) else (f"{a:.2f} ± {c:.2f}" if not math.isnan(c) else f"{a:.2f}")
        for a, c in zip(acc, ci, strict=True)
    ]
    for col, fmt in (("peak_mem_mb", "{:.1f}"), ("sec_per_iter", "{:.4f}")):
        df[col] = ["" if pd.isna(v) else fmt.format(v) for v in pd.to_numeric(df[col], "coerce")]
    df["train_seconds"] = [
        "" if pd.isna(v) else f"{v:.1f}" for v in pd.to_numeric(df["train_seconds"], "coerce")
    ]
    return df[[c for c in CELL_COLUMNS if c in df.columns]]


def log_tail(results_dir: Path, row: pd.Series, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a failed cell's log (logs/<id>.log), else its traceback or
    error message."""
    log = results_dir / "logs" / f"{row['cell_id']}.log"
    if log.exists():
        text = log.read_text(errors="replace")
    else:
        tb = row.get("traceback")
        text = tb if isinstance(tb, str) and tb else str(row.get("error") or "")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _failed(results_dir: Path, runs: pd.DataFrame) -> str:
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return '<p class="status-ok">every cell finished ok.</p>'
    parts = []
    if len(bad) > INLINE_CELLS:
        parts.append(
            f'<p class="note">{len(bad)} failed cells: the first {INLINE_CELLS} are shown; '
            f"all are in {CELLS_CSV} (status, error) and runs.csv.</p>"
        )
        bad = bad.iloc[:INLINE_CELLS]
    for _, r in bad.iterrows():
        parts.append(
            f'<h3 id="failed-{esc(r["cell_id"])}"><a href="#cell-{esc(r["cell_id"])}">'
            f'{esc(r["cell_id"])}</a> <span class="status-bad">{esc(r["status"]).upper()}</span>'
            f"</h3>"
            + _kv([("label", r.get("label")), ("error", r.get("error"))])
            + f"<pre>{esc(log_tail(results_dir, r))}</pre>"
        )
    return "".join(parts)


def _cell_sections(
    results_dir: Path, runs: pd.DataFrame, curves: pd.DataFrame, eps: pd.DataFrame
) -> str:
    parts = []
    for _, r in runs.iterrows():
        cid = str(r["cell_id"])
        c = curves[curves["cell_id"] == cid].sort_values("iteration") if len(curves) else curves
        chart = ""
        if len(c):
            svg = line_svg(
                [("validation accuracy", c["train_seconds"].tolist(), c["val_acc"].tolist())],
                "training wall-clock (s)",
                "val acc (%)",
            )
            chart = plot_block(svg, f"validation accuracy of {cid}", f"plot-cell-{cid}")
        e = eps[eps["cell_id"] == cid]["acc"] if len(eps) else pd.Series(dtype=float)
        summary = ""
        if len(e):
            summary = (
                f'<p class="note">{len(e)} test episodes: mean {e.mean():.2f}%, '
                f"std {e.std(ddof=1) if len(e) > 1 else 0:.2f}, min {e.min():.2f}, "
                f"max {e.max():.2f}</p>"
            )
        cols = [(k, v) for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))]
        status = "ok" if r["status"] == "ok" else "bad"
        tail = ""
        if r["status"] != "ok":
            tail = f"<pre>{esc(log_tail(results_dir, r))}</pre>"
        parts.append(
            f'<details id="cell-{esc(cid)}"><summary>{esc(cid)} · {esc(r.get("variant"))} · '
            f"{esc(r.get('setting'))} · seed {esc(r.get('seed'))} · "
            f'<span class="status-{status}">{esc(r["status"])}</span></summary>'
            f"{chart}{summary}{tail}{_kv([(str(k), v) for k, v in cols])}</details>"
        )
    return "".join(parts)


def _inline_cells(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The cells the page shows row by row (the failed ones first, at most ``INLINE_CELLS``)
    and, when there are more, a note linking to the full table (``cells.csv``)."""
    if len(runs) <= INLINE_CELLS:
        return runs, ""
    order = (runs["status"] == "ok").to_numpy().argsort(kind="stable")
    shown = runs.iloc[order[:INLINE_CELLS]]
    note = (
        f'<p class="note">{len(runs)} cells: the first {INLINE_CELLS} are shown here (failed '
        f'ones first); every cell is in <a href="./{CELLS_CSV}">{CELLS_CSV}</a> beside this page '
        "and in runs.csv; the tables above summarise all of them.</p>"
    )
    return shown, note


def html_report(results_dir: Path, report: Any, plots: str = "static") -> str:
    """The page's HTML for ``results_dir`` and the :class:`memcomp.report.Report` built from it
    (its sections and the input it read: nothing is read again); ``plots`` is ``"static"``
    (inline SVG) or ``"interactive"`` (plotly, needs the extra)."""
    if plots not in PLOTS:
        raise ValueError(f"html_report: plots={plots!r}; choose from {list(PLOTS)}")
    inp = _source(results_dir, report)
    manifest, curves, eps, runs = inp.manifest, inp.curves, inp.episodes, inp.runs
    suite = manifest.get("suite") or "unknown suite"
    counts = runs["status"].value_counts() if len(runs) else pd.Series(dtype=int)
    status = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no cells"
    header = (
        f"<h1>memcomp report: {esc(suite)}</h1>"
        f"<p>{esc(results_dir)} · {len(runs)} cells ({esc(status)}) · "
        f"started {esc(manifest.get('started_at', 'unknown'))}</p>"
    )
    notes = "".join(f'<p class="note">note: {esc(n)}</p>' for n in report.notes)
    head = f'<meta name="{PLOTS_META}" content="{plots}">' if plots != "static" else ""
    sections = [("provenance", "Provenance", _provenance(manifest) + notes)]
    if runs.empty:
        return page(f"memcomp report: {suite}", header, sections, head)
    sections += _section_blocks(report, runs, plots)
    shown, more = _inline_cells(runs)
    links = {str(c): f"#cell-{c}" for c in shown["cell_id"]}
    cells = more + table_html(
        _cells_frame(shown), "table-cells", ("learner", "dataset", "setting", "status"),
        links=links,
    )  # fmt: skip
    sections.append(("cells", "All cells", cells))
    sections.append(("failed", "Failed cells", _failed(Path(results_dir), runs)))
    sections.append(
        ("per-cell", "Per-cell details", _cell_sections(Path(results_dir), shown, curves, eps))
    )
    return page(f"memcomp report: {suite}", header, sections, head)


def _source(results_dir: Path, report: Any) -> ReportInput:
    """The input ``report`` was built from (read again only for a Report made by hand)."""
    inp = getattr(report, "source", None)
    return inp if inp is not None else ReportInput.read(Path(results_dir))


def write_html_report(results_dir: Path, report: Any, out: Path, plots: str = "static") -> Path:
    """Write ``out/report.html`` (atomically: the whole page or nothing) and return its path."""
    text = html_report(Path(results_dir), report, plots)
    path = Path(out) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = _source(results_dir, report).runs
    if len(runs) > INLINE_CELLS:  # the page links to the full table
        cols = [c for c in [*CELL_COLUMNS, "test_ci95", "error"] if c in runs.columns]
        atomic_write_text(path.parent / CELLS_CSV, runs[cols].to_csv(index=False))
    atomic_write_text(path, text)
    return path


def page_plots(path: Path) -> str:
    """The ``plots`` a report.html was written with (``"static"`` where it does not say)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        start = f.read(2048)
    found = start.find(f'<meta name="{PLOTS_META}" content="')
    if found < 0:
        return "static"
    return start[found:].split('content="', 1)[1].split('"', 1)[0]


def build_html_page(
    run: Path, formats: tuple[str, ...] = ("md", "csv"), plots: str = "static"
) -> Path:
    """``memcomp report RUN`` for one run: its tables and figures, then its report.html."""
    from memcomp.report import build_report

    rep = build_report(Path(run), None, formats)
    return write_html_report(Path(run), rep, Path(run) / "report", plots)
