"""report.html, the results index and their pieces, on real tiny runs (no browser needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers_results import shared_report, shared_run
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.html import log_tail
from memcomp.report.htmlkit import line_svg, table_html
from memcomp.report.index import find_runs, page_is_current
from memcomp.report.phase_memory import phase_memory_table
from memcomp.report.tables import normalize_runs

runner = CliRunner()


def report(*args: str) -> str:
    res = runner.invoke(app, ["report", *args])
    assert res.exit_code == 0, res.output
    return res.output


def external_references(page: str) -> list[str]:
    """Addresses a browser would fetch: src/href values that are not in-page anchors, CSS urls
    and imports, and link tags."""
    refs = re.findall(r'\b(?:src|href|xlink:href)="([^"#][^"]*)"', page)
    refs += re.findall(r"url\((?!#)([^)]*)\)", page) + re.findall(r"@import[^;]*", page)
    return refs + re.findall(r"<link\b[^>]*>", page)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path, printed = shared_report(tmp_path_factory)
    assert printed.strip().splitlines()[-1] == f"report.html: {path}"  # the last line
    return path.read_text()


def test_report_html_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert external_references(page) == []
    assert "<script>" in page and "<script src" not in page and "<style>" in page


def test_report_html_has_every_section(run: Path, page: str) -> None:
    for section in ("provenance", "accuracy", "memory", "time", "phases", "cells", "failed"):
        assert f'<section id="{section}">' in page, section
    manifest = pd.read_json(run / "manifest.json", typ="series")
    assert f"<td>{manifest['torch_version']}</td>" in page
    assert f"<td>{manifest['python_version']}</td>" in page
    assert "description: tiny suite for report tests" in page  # the suite text, escaped
    for table in ("table-accuracy", "table-time_to_accuracy", "table-phase_memory", "table-cells"):
        assert f'id="{table}"' in page, table
    assert 'data-filters="learner,dataset,setting,status"' in page
    # plots: memory vs K, accuracy vs time, per-phase memory, one curve per cell that trained
    assert {"plot-memory", "plot-val_vs_time", "plot-phase-memory"} <= set(
        re.findall(r'<figure class="mc-plot" id="([^"]+)"', page)
    )
    runs = pd.read_csv(run / "runs.csv")
    for cid in runs["cell_id"]:
        assert f'<details id="cell-{cid}">' in page
    for cid in runs.loc[runs["status"] == "ok", "cell_id"]:
        assert f'id="plot-cell-{cid}"' in page


def test_failed_cells_show_status_and_error(run: Path, page: str) -> None:
    runs = pd.read_csv(run / "runs.csv")
    failed = runs[runs["status"] != "ok"]
    assert len(failed) == 2
    for _, r in failed.iterrows():
        assert f'id="failed-{r["cell_id"]}"' in page
    assert "ValueError" in page  # fake-error raises ValueError at meta-step 3


def test_no_html_writes_no_page(run: Path, tmp_path: Path) -> None:
    report(str(run), "--out", str(tmp_path), "--no-html")
    assert (tmp_path / "accuracy.md").exists() and not (tmp_path / "report.html").exists()


def test_index_of_a_folder_of_runs_links_every_page(run: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    for suite, stamp in (("tiny", "20260101-000000"), ("tiny", "20260102-000000")):
        shutil.copytree(run, results / suite / stamp)
    shutil.copytree(run, results / "other" / "20260103-000000")
    (results / "other" / "20260103-000000" / "runs.csv").write_text(
        pd.read_csv(run / "runs.csv").tail(2).to_csv(index=False)
    )
    printed = report(str(results))
    assert "3 runs; index.html:" in printed
    index = (results / "index.html").read_text()
    assert external_references(index) == [
        f"./{s}/{d}/report/report.html"
        for s, d in (("other", "20260103-000000"), ("tiny", "20260101-000000"),
                     ("tiny", "20260102-000000"))
    ]  # fmt: skip
    assert all((results / href).exists() for href in external_references(index))
    assert all(page_is_current(r) for r in find_runs(results))
    assert "<td>2</td><td>0</td><td>2</td><td>2 error</td>" in index  # other: 2 cells, both failed


def test_suite_folder_report_also_indexes_its_runs(run: Path, tmp_path: Path) -> None:
    shutil.copytree(run, tmp_path / "tiny" / "20260101-000000")
    shutil.copytree(run, tmp_path / "tiny" / "20260102-000000")
    printed = report(str(tmp_path / "tiny"))
    lines = printed.strip().splitlines()
    assert lines[-2] == f"index.html: {tmp_path / 'tiny' / 'index.html'}"
    assert lines[-1].endswith("20260102-000000/report/report.html")  # the newest run's page
    assert (tmp_path / "tiny" / "20260101-000000" / "report" / "report.html").exists()


def test_phase_memory_is_the_mean_of_the_recorded_phases(run: Path) -> None:
    runs = pd.read_csv(run / "runs.csv")
    t = phase_memory_table(runs).tidy.set_index("variant")
    norm = normalize_runs(runs)
    for variant, sub in norm.groupby("variant"):
        for phase in ("inner", "hypergrad", "outer_update"):
            col = f"mem_{phase}_mb"
            if col in sub and sub[col].notna().any():
                assert t.loc[variant, phase] == pytest.approx(sub[col].mean())
    assert t.loc["maml", "inner"] > 0


def test_log_tail_prefers_the_cell_log(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "c1.log").write_text("\n".join(f"line {i}" for i in range(100)))
    row = pd.Series({"cell_id": "c1", "error": "boom", "traceback": "tb"})
    assert log_tail(tmp_path, row, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path, row.replace("c1", "c2")) == "tb"


def test_table_and_line_chart_escape_and_draw() -> None:
    html = table_html(pd.DataFrame({"a": ["<x>", "y"], "b": [1.5, None]}), "t", ("a",), "n&b")
    assert "&lt;x&gt;" in html and "<td></td>" in html and "n&amp;b" in html
    svg = line_svg([("s", [0, 1, 2], [10, 20, 15])], "x", "y")
    assert svg.count("<circle") == 3 and 'points="' in svg
    assert line_svg([("s", [], [])], "x", "y") == ""


def test_paper_figure2_rows_and_oom_cells_on_a_hand_built_folder(tmp_path: Path) -> None:
    from test_report import make_results

    results = make_results(tmp_path / "fixture" / "20260101-000000")
    report(str(results))
    page = (results / "report" / "report.html").read_text()
    # glyphs 5w5s q5 at 32x32 Conv4-64 has the paper's CIFAR-FS/FC100 Figure 2 panel
    assert "<td>paper MAML</td><td>262.0</td>" in page
    assert "(paper panel: CIFAR-FS/FC100)" in page  # the memory plot's panel title, as text
    assert page.count('class="status-bad">OOM</span>') == 2  # maml K=20, both seeds
    assert '<section id="phases">' not in page  # no mem_<phase>_mb columns recorded
    assert external_references(page) == []


def test_unreadable_manifest_still_gives_a_page(run: Path, tmp_path: Path) -> None:
    d = tmp_path / "run"
    shutil.copytree(run, d)
    (d / "manifest.json").write_text('{"suite": "tiny", "cells": {')  # truncated
    report(str(d))
    page = (d / "report" / "report.html").read_text()
    assert "the manifest does not record the suite text" in page
    assert page.count('<details id="cell-') == 6
