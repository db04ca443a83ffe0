"""The results index: ``index.html`` listing every run below a folder (suite, date, cells, status
counts, device, memcomp version) with a link to each run's ``report.html``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from memcomp.fsutil import atomic_write_text
from memcomp.report.html import page_plots
from memcomp.report.htmlkit import esc, page, path_href, table_html
from memcomp.results import ResultsDir

__all__ = ["find_runs", "index_html", "page_is_current", "write_index"]

INPUTS = ("runs.csv", "curves.csv", "episodes.csv", "manifest.json")


def find_runs(folder: Path) -> list[Path]:
    """Run folders (those with a runs.csv) one or two levels below ``folder``, sorted."""
    folder = Path(folder)
    found = {p.parent for pattern in ("*/runs.csv", "*/*/runs.csv") for p in folder.glob(pattern)}
    return sorted(found)


def report_page(run: Path) -> Path:
    """Where ``memcomp report RUN`` writes the run's page."""
    return Path(run) / "report" / "report.html"


def page_is_current(run: Path, plots: str = "static") -> bool:
    """True when the run's report.html is newer than every results file it was built from and
    was written with the same ``plots`` (static or interactive)."""
    html = report_page(run)
    if not html.exists() or page_plots(html) != plots:
        return False
    inputs = [Path(run) / n for n in INPUTS if (Path(run) / n).exists()]
    return all(html.stat().st_mtime >= p.stat().st_mtime for p in inputs)


def _row(run: Path, folder: Path, out_dir: Path) -> dict[str, object]:
    rd = ResultsDir(run)
    manifest = rd.manifest_or_empty()
    runs = rd.runs(manifest)
    status = runs["status"].fillna("ok").astype(str).str.lower() if len(runs) else pd.Series()
    counts = status.value_counts()
    html = report_page(run)
    return {
        "run": str(run.relative_to(folder)),
        "suite": manifest.get("suite") or (runs["suite"].iloc[0] if len(runs) else ""),
        "started": manifest.get("started_at") or run.name,
        "cells": len(runs),
        "ok": int(counts.get("ok", 0)),
        "failed": int(len(runs) - counts.get("ok", 0)),
        "statuses": ", ".join(f"{n} {s}" for s, n in counts.items()),
        "device": manifest.get("device_name") or manifest.get("device") or "",
        "memcomp": manifest.get("memcomp_version") or "",
        "_href": path_href(os.path.relpath(html, out_dir)) if html.exists() else "",
    }


def index_html(folder: Path, runs: list[Path], out_dir: Path) -> str:
    """The index page of ``runs`` (below ``folder``), with links relative to ``out_dir``: each
    a ``./`` address with its segments URL-quoted (:func:`~memcomp.report.htmlkit.path_href`),
    so no folder name (``javascript:...``) becomes a scheme."""
    rows = [_row(r, Path(folder), Path(out_dir)) for r in runs]
    df = pd.DataFrame(rows)
    links = {r["run"]: str(r["_href"]) for r in rows if r["_href"]}
    body = (
        table_html(df.drop(columns="_href"), "table-runs", ("suite", "device"), links=links)
        if len(df)
        else '<p class="note">no runs found.</p>'
    )
    total = int(df["cells"].sum()) if len(df) else 0
    header = (
        f"<h1>memcomp results: {esc(folder)}</h1>"
        f"<p>{len(rows)} runs · {total} cells · click a run to open its report</p>"
    )
    return page(f"memcomp results: {folder}", header, [("runs", "Runs", body)])


def write_index(
    folder: Path,
    out_dir: Path | None = None,
    build_page: Callable[[Path], Path] | None = None,
    plots: str = "static",
) -> Path:
    """Write ``index.html`` for every run below ``folder`` into ``out_dir`` (default
    ``folder``); ``build_page(run)`` is called for runs whose page is missing, outdated or was
    written with other ``plots`` than ``build_page`` writes."""
    folder = Path(folder)
    out_dir = Path(out_dir) if out_dir is not None else folder
    runs = find_runs(folder)
    if build_page is not None:
        for run in runs:
            if not page_is_current(run, plots):
                build_page(run)
    path = out_dir / "index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, index_html(folder, runs, out_dir))
    return path
