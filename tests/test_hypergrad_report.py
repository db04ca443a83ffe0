"""``memcomp report`` on a ``memcomp diagnose`` folder: the hypergradient-error table, the
error-vs-memory and error-vs-time figure and the HTML page, from the CSV diagnose writes; a
damaged CSV is exit 2 naming the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.hypergrad import build_hypergrad_report, hypergrad_table, read_hypergrad

runner = CliRunner()


def _rows() -> pd.DataFrame:
    """Rows as ``memcomp diagnose`` writes them (the columns of diagnose.sweep.run_sweep)."""
    return pd.DataFrame(
        [
            {"learner": "maml-recompute", "problem": "unrolled K=3", "varies": "K",
             "learner.inner_steps": 3, "learner.cg_steps": None, "learner.lam": None,
             "rel_error": 0.0, "cosine": 1.0, "exact_norm": 2.0, "sec_per_meta_grad": 0.02,
             "peak_mem_mb": 5.4, "lower_grad_norm": None, "cg_residual": None},
            {"learner": "mrml", "problem": "head l2=0.1", "varies": "N",
             "learner.inner_steps": 1000, "learner.cg_steps": 5, "learner.lam": None,
             "rel_error": 8.7e-2, "cosine": 0.996, "exact_norm": 1.0, "sec_per_meta_grad": 0.3,
             "peak_mem_mb": 0.36, "lower_grad_norm": 4.6e-15, "cg_residual": 0.26},
            {"learner": "f2sa", "problem": "head l2=0.1", "varies": "lambda",
             "learner.inner_steps": 1000, "learner.cg_steps": None, "learner.lam": 100.0,
             "rel_error": 1.25e-2, "cosine": 0.9999, "exact_norm": 1.0,
             "sec_per_meta_grad": 0.5, "peak_mem_mb": 0.36, "lower_grad_norm": 1e-12,
             "cg_residual": None},
            {"learner": "imaml", "problem": "proximal", "varies": "hvp=forward",
             "learner.inner_steps": 100, "learner.cg_steps": 20, "learner.lam": 2.0,
             "rel_error": 1.7e-3, "cosine": 0.999999, "exact_norm": 3.0,
             "sec_per_meta_grad": 1.7, "peak_mem_mb": None, "lower_grad_norm": 0.5,
             "cg_residual": 7.3e-4},
        ]
    )  # fmt: skip


@pytest.fixture
def diag(tmp_path: Path) -> Path:
    folder = tmp_path / "diagnose"
    folder.mkdir()
    _rows().to_csv(folder / "hypergrad-error.csv", index=False)
    return folder


def test_table_names_each_swept_knob_and_keeps_the_numbers(diag: Path) -> None:
    table = hypergrad_table(read_hypergrad(diag))
    assert table.data["setting"].tolist() == ["K = 3", "N = 5", "lambda = 100", "hvp=forward"]
    assert table.tidy["rel_error"].tolist() == [0.0, 8.7e-2, 1.25e-2, 1.7e-3]
    assert table.data["rel_error"].tolist() == ["0", "0.087", "0.0125", "0.0017"]
    assert table.data["peak_mem_mb"].iloc[3] == ""  # not measured: empty, not "nan"
    assert table.tidy["cg_residual"].iloc[1] == 0.26


def test_report_command_writes_table_figure_and_page(diag: Path) -> None:
    res = runner.invoke(app, ["report", str(diag), "--format", "md,csv,tex"])
    assert res.exit_code == 0, res.output
    out = diag / "report"
    for name in (
        "hypergrad_error.md",
        "hypergrad_error.csv",
        "hypergrad_error.tex",
        "hypergrad_error.png",
        "hypergrad_error.svg",
        "report.md",
        "report.html",
    ):
        assert (out / name).is_file(), name  # fmt: skip
    assert (out / "hypergrad_error.png").stat().st_size > 5000
    tidy = pd.read_csv(out / "hypergrad_error.csv")
    assert tidy["learner"].tolist() == ["maml-recompute", "mrml", "f2sa", "imaml"]
    html = (out / "report.html").read_text()
    assert "<svg" in html and 'id="table-hypergrad_error"' in html and "lambda = 100" in html
    assert "1 row without error, memory or time is not plotted" in res.output
    md = (out / "report.md").read_text()
    assert "![hypergrad_error](hypergrad_error.png)" in md and "| f2sa" in md


def test_figure_draws_one_line_per_learner_and_knob(diag: Path) -> None:
    rep = build_hypergrad_report(diag, diag / "r", ("csv",), html=False)
    svg = (diag / "r" / "hypergrad_error.svg").read_text()
    for label in ("maml-recompute (K)", "mrml (N)", "f2sa (lambda)"):
        assert label in svg
    assert "imaml (hvp=forward)" not in svg  # its memory was not measured: not drawn
    assert not (diag / "r" / "report.html").exists()
    assert [t.name for t in rep.tables] == ["hypergrad_error"]


@pytest.mark.parametrize("damage", ["garbage", "columns"])
def test_a_damaged_csv_is_exit_2_naming_it(diag: Path, damage: str) -> None:
    csv = diag / "hypergrad-error.csv"
    if damage == "garbage":
        csv.write_bytes(b'\x00\xff\x00 not a csv\n"unclosed')
    else:
        csv.write_text("learner,rel_error\nmrml,0.1\n")
    res = runner.invoke(app, ["report", str(diag)])
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert "hypergrad-error.csv" in flat and "memcomp diagnose" in flat
    assert "Traceback" not in res.output
