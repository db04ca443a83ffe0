"""Report sections share one registry: every section, built-in or from a plugin, is in report.md,
its CSV/TeX tables, the terminal and report.html alike (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers_results import shared_run
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.registry import Entry, Params
from memcomp.report import REPORT_SECTIONS, ReportInput, SectionOutput, Table, build_report
from memcomp.report.sections import BUILTIN_ORDER, sections

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def _seeds(inp: ReportInput) -> SectionOutput:
    tidy = inp.runs.groupby("learner").size().rename("cells").reset_index()
    note = "cells per learner (a plugin section)"
    return SectionOutput([Table("seeds", "Cells per learner", tidy, tidy, note)], notes=["hello"])


def _broken(inp: ReportInput) -> SectionOutput:
    raise RuntimeError("no such column 'zz'")


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sections as a plugin module would register them; removed after the test."""
    for name, title, build in (("seeds", "Cells per learner", _seeds), ("zz", "Broken", _broken)):
        entry = Entry(name, title, Params, build, "module my_sections")
        monkeypatch.setitem(REPORT_SECTIONS._entries, name, entry)


def test_built_in_sections_come_first_in_page_order() -> None:
    assert [s.name for s in sections()][: len(BUILTIN_ORDER)] == list(BUILTIN_ORDER)
    assert all(s.source == "built-in" for s in sections())


def test_plugin_section_is_in_md_csv_terminal_and_html(
    run: Path, tmp_path: Path, plugin: None
) -> None:
    res = runner.invoke(app, ["report", str(run), "--out", str(tmp_path), "--format", "md,csv"])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "seeds.csv")
    assert dict(zip(csv["learner"], csv["cells"], strict=True)) == (
        pd.read_csv(run / "runs.csv")["learner"].value_counts().to_dict()
    )
    md = (tmp_path / "report.md").read_text()
    assert "## Cells per learner" in md and "hello" in md
    assert "Cells per learner" in res.output  # the terminal table
    page = (tmp_path / "report.html").read_text()
    assert '<section id="seeds">' in page and 'id="table-seeds"' in page
    # the order: built-ins, then plugins by name, then the page's own sections
    assert page.index('<section id="time">') < page.index('<section id="seeds">')
    assert page.index('<section id="seeds">') < page.index('<section id="cells">')


def test_a_failing_plugin_section_is_a_note_not_a_lost_report(
    run: Path, tmp_path: Path, plugin: None
) -> None:
    rep = build_report(run, tmp_path)
    note = next(n for n in rep.notes if "'zz'" in n)
    assert "module my_sections" in note and "RuntimeError: no such column 'zz'" in note
    assert rep.table("accuracy").data.shape[0] > 0 and not (tmp_path / "zz.csv").exists()


def test_phase_memory_table_is_written_beside_the_others(run: Path, tmp_path: Path) -> None:
    rep = build_report(run, tmp_path, ("md", "csv"))
    tidy = pd.read_csv(tmp_path / "phase_memory.csv")
    assert {"setting", "variant", "inner"} <= set(tidy.columns) and len(tidy)
    assert rep.table("phase_memory").filters == ("setting",)
    assert "## Peak memory per phase (MB)" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "phase_memory.svg").exists() and (tmp_path / "phase_memory.png").exists()


def test_the_page_reads_nothing_again(run: Path, tmp_path: Path, monkeypatch) -> None:
    from memcomp.report.html import write_html_report
    from memcomp.results.store import ResultsDir

    rep = build_report(run, tmp_path)
    calls = []
    monkeypatch.setattr(ResultsDir, "runs", lambda *a, **k: calls.append(a) or pd.DataFrame())
    write_html_report(run, rep, tmp_path)
    assert calls == [] and '<section id="accuracy">' in (tmp_path / "report.html").read_text()
