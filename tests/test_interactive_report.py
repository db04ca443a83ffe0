"""``memcomp report --plots interactive``: plotly charts in report.html (the ``interactive``
extra), checked against the static figures' tidy data on a real tiny run (no browser needed)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers_results import shared_report, shared_run
from test_html_report import external_references
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.html import page_plots
from memcomp.report.plots import plot_memory, plot_val_vs_time
from memcomp.results import ResultsDir

runner = CliRunner()
NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"([^"]+)",\s*')


def charts(page: str) -> dict[str, list[dict[str, Any]]]:
    """Each ``Plotly.newPlot(id, data, ...)`` call's div id and its traces, parsed as JSON."""
    out = {}
    for m in NEW_PLOT.finditer(page):
        out[m.group(1)], _ = json.JSONDecoder().raw_decode(page, m.end())
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def interactive(run: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("plotly")
    out = tmp_path_factory.mktemp("interactive")
    res = runner.invoke(app, ["report", str(run), "--out", str(out), "--plots", "interactive"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == f"report.html: {out / 'report.html'}"
    return (out / "report.html").read_text()


def test_plotly_js_is_inlined_once_and_nothing_is_fetched(interactive: str) -> None:
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert len(bundle) > 1_000_000 and interactive.count(bundle) == 1
    assert interactive.index(bundle) < interactive.index("Plotly.newPlot(")  # loaded before use
    assert re.findall(r"<script\b[^>]*\bsrc\s*=", interactive) == []
    assert "<link" not in interactive
    # outside the bundle's own code: no address a browser would fetch, none in any script
    rest = interactive.replace(bundle, "")
    assert external_references(rest) == []
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", rest, re.S)
    assert len(scripts) >= 3 and not any("http" in s for s in scripts)
    assert '<meta name="memcomp-plots" content="interactive">' in interactive[:2048]


def test_one_chart_per_main_figure_in_place_of_its_svg(interactive: str) -> None:
    found = charts(interactive)
    assert set(found) == {"plot-memory-chart", "plot-val_vs_time-chart"}
    figures = re.findall(r'<figure class="mc-plotly" id="([^"]+)"', interactive)
    assert figures == ["plot-memory", "plot-val_vs_time"]  # page order: memory, then time
    static = set(re.findall(r'<figure class="mc-plot" id="([^"]+)"', interactive))
    assert "plot-memory" not in static and "plot-val_vs_time" not in static
    assert "plot-phase-memory" in static and any(s.startswith("plot-cell-") for s in static)
    assert interactive.count('<section id="memory">') == 1
    assert 'id="table-memory"' in interactive and 'id="table-time_to_accuracy"' in interactive


def test_memory_chart_carries_the_static_figures_bars(run: Path, interactive: str) -> None:
    rd = ResultsDir(run)
    _, bars = plot_memory(rd.runs(rd.manifest_or_empty()))
    assert len(bars) and bars["height"].notna().any()
    traces = charts(interactive)["plot-memory-chart"]
    groups = list(bars.groupby(["setting", "source", "series"], sort=False))
    assert len(traces) == len(groups)
    for ((_, source, series), b), t in zip(groups, traces, strict=True):
        assert t["type"] == "bar" and t["name"] == str(series)
        assert t["x"] == [f"K={k}" for k in b["K"]]
        assert t["y"] == pytest.approx(b["drawn_height"].astype(float).tolist())
        for row, (_, r) in zip(t["customdata"], b.iterrows(), strict=True):
            assert row[:4] == [series, r["learner"], source, int(r["K"])]
            assert row[4] == ("OOM" if r["oom"] else f"{r['height']:.1f} MB")
        assert "learner" in t["hovertemplate"] and "K = " in t["hovertemplate"]


def test_time_chart_carries_the_static_figures_curves(run: Path, interactive: str) -> None:
    rd = ResultsDir(run)
    runs = rd.runs(rd.manifest_or_empty())
    _, curves = plot_val_vs_time(runs, rd.curves())
    assert len(curves) > 3
    traces = charts(interactive)["plot-val_vs_time-chart"]
    groups = list(curves.groupby(["setting", "variant"], sort=False))
    assert [t["name"] for t in traces] == [v for (_, v), _ in groups]
    for (_, c), t in zip(groups, traces, strict=True):
        assert t["x"] == pytest.approx(c["train_seconds"].tolist())
        assert t["y"] == pytest.approx(c["val_acc"].tolist())
        assert [row[2] for row in t["customdata"]] == c["iteration"].tolist()
        assert [row[3] for row in t["customdata"]] == c["n_seeds"].tolist()
        for word in ("learner", " s<br>", "val acc"):
            assert word in t["hovertemplate"]
    learners = {str(r["learner"]) for r in runs.to_dict("records")}
    assert {row[1] for t in traces for row in t["customdata"]} <= learners


def test_default_page_has_no_plotly(tmp_path_factory: pytest.TempPathFactory) -> None:
    page = shared_report(tmp_path_factory)[0].read_text()
    for word in ("Plotly", "plotly.js", "mc-plotly", "memcomp-plots"):  # (the path has "plotly")
        assert word not in page, word
    assert '<figure class="mc-plot" id="plot-memory">' in page


def _hide_plotly(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "plotly" or n.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "plotly", None)  # `import plotly...` raises ImportError


def test_without_plotly_interactive_is_exit_2_and_writes_nothing(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_plotly(monkeypatch)
    out = tmp_path / "out"
    res = runner.invoke(app, ["report", str(run), "--out", str(out), "--plots", "interactive"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'memcomp[interactive]'" in lines[0], res.output
    assert not out.exists()  # no half page, no tables either
    results = tmp_path / "results"
    shutil.copytree(run, results / "tiny" / "20260101-000000")
    res = runner.invoke(app, ["report", str(results), "--plots", "interactive"])
    assert res.exit_code == 2 and "memcomp[interactive]" in res.output
    assert not (results / "index.html").exists()
    assert not (results / "tiny" / "20260101-000000" / "report").exists()
    # the static default does not need plotly
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").exists()


def test_bad_plots_value_is_a_usage_error(run: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(run), "--out", str(tmp_path), "--plots", "fancy"])
    assert res.exit_code == 2 and "--plots" in res.output
    assert not (tmp_path / "report.html").exists()


def test_index_passes_plots_to_every_run_page(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    results = tmp_path / "results"
    stamps = ("20260101-000000", "20260102-000000")
    for stamp in stamps:
        shutil.copytree(run, results / "tiny" / stamp)
    pages = [results / "tiny" / s / "report" / "report.html" for s in stamps]
    res = runner.invoke(app, ["report", str(results), "--plots", "interactive"])
    assert res.exit_code == 0, res.output
    assert [page_plots(p) for p in pages] == ["interactive", "interactive"]
    assert all(set(charts(p.read_text())) == {"plot-memory-chart", "plot-val_vs_time-chart"}
               for p in pages)  # fmt: skip
    index = (results / "index.html").read_text()
    assert "Plotly" not in index and external_references(index) == [
        f"./tiny/{s}/report/report.html" for s in stamps
    ]
    # current pages of the other kind are rebuilt: static again, without plotly
    res = runner.invoke(app, ["report", str(results)])
    assert res.exit_code == 0, res.output
    assert [page_plots(p) for p in pages] == ["static", "static"]
    assert all("Plotly" not in p.read_text() for p in pages)
    assert pd.read_csv(run / "runs.csv").shape[0] == 6  # the shared run was not touched


def test_paper_bars_and_oom_cells_in_the_memory_chart(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    from test_report import make_results

    results = make_results(tmp_path / "fixture" / "20260101-000000")
    res = runner.invoke(app, ["report", str(results), "--plots", "interactive"])
    assert res.exit_code == 0, res.output
    page = (results / "report" / "report.html").read_text()
    _, bars = plot_memory(ResultsDir(results).runs())
    assert bars["oom"].any() and (bars["source"] == "paper").any()
    traces = charts(page)["plot-memory-chart"]
    groups = list(bars.groupby(["setting", "source", "series"], sort=False))
    assert len(traces) == len(groups) and len(set(bars["setting"])) > 1
    axes = {s: t["xaxis"] for ((s, _, _), _), t in zip(groups, traces, strict=True)}
    assert len(set(axes.values())) == len(axes)  # one panel per setting
    for ((_, source, series), b), t in zip(groups, traces, strict=True):
        assert t["name"] == str(series)
        assert t["y"] == pytest.approx(b["drawn_height"].astype(float).tolist())
        assert t["opacity"] == (0.4 if source == "paper" else 1.0)
        oom = b["oom"].astype(bool).tolist()
        assert t["marker"]["pattern"]["shape"] == ["/" if o else "" for o in oom]
        assert t["text"] == ["OOM" if o else "" for o in oom]
        assert [r[4] == "OOM" for r in t["customdata"]] == oom
    assert sum(t["text"].count("OOM") for t in traces) == int(bars["oom"].sum())
