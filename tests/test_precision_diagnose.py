"""``memcomp diagnose``'s rounding rows: every learner's float32 / bf16 meta-gradient against
its own float64 one at the same weights and tasks (tf32: CUDA only), beside the error against
the exact hypergradient; the CSV, the report's rounding table and figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers_head import one_thread  # noqa: F401
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.diagnose import Config, Problem, run_sweep
from memcomp.diagnose.rounding import rounding_sweep, run_rounding
from memcomp.learners import LEARNERS
from memcomp.report.hypergrad import build_hypergrad_report, read_hypergrad, rounding_table

SMALL = Problem(ways=3, shots=2, queries=2, hidden=3, tasks=2)
HEAD = {"l2": SMALL.l2, "inner_lr": 0.5, "execution": "sequential"}
CONFIGS = [
    Config("maml", {"inner_steps": 3, "inner_lr": 0.1, "execution": "sequential"}, "precision"),
    Config("mrml", {**HEAD, "inner_steps": 200, "cg_steps": 10}, "precision"),
    Config("r2d2", {"execution": "sequential"}, "precision"),
]


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.DataFrame(run_rounding(CONFIGS, SMALL, repeats=1, memory=True))


def pick(rows: pd.DataFrame, learner: str, precision: str) -> pd.Series:
    (i,) = rows.index[(rows["learner"] == learner) & (rows["precision"] == precision)]
    return rows.loc[i]


def test_rounding_grows_from_float64_to_float32_to_bf16(rows: pd.DataFrame) -> None:
    for learner in ("maml", "mrml", "r2d2"):
        f64, f32, bf16 = (pick(rows, learner, p) for p in ("float64", "float32", "bf16"))
        assert f64["rounding_error"] == 0 and f64["rounding_cosine"] == pytest.approx(1)
        assert 0 < f32["rounding_error"] < 1e-4  # float32: about its epsilon, amplified a bit
        assert 2e-4 < bf16["rounding_error"] < 1  # bf16: 8-bit mantissa
        assert bf16["rounding_cosine"] < f32["rounding_cosine"] <= 1 + 1e-12
        assert bf16["autocast_dtype"] == "bfloat16" and f32["autocast_dtype"] == "none"
        assert bf16["peak_mem_mb"] > 0 and f32["sec_per_meta_grad"] > 0
        assert f64["grad_norm"] == pytest.approx(f32["grad_norm"], rel=1e-4)


def test_tf32_rows_say_cuda_only_on_the_cpu(rows: pd.DataFrame) -> None:
    tf32 = rows[rows["precision"] == "tf32"]
    assert len(tf32) == len(CONFIGS) and set(tf32["status"]) == {"CUDA only"}
    assert tf32["rounding_error"].isna().all()


def test_the_error_against_the_exact_hypergradient_stands_beside(rows: pd.DataFrame) -> None:
    # maml's exact meta-gradient is its own float64 one: its float32 error there is rounding
    f32 = pick(rows, "maml", "float32")
    assert pick(rows, "maml", "float64")["rel_error"] < 1e-12
    assert f32["rel_error"] == pytest.approx(f32["rounding_error"], rel=1e-6)
    # mrml in float64 gives exactly what the hypergradient sweep reports for the same config
    (swept,) = run_sweep([Config("mrml", CONFIGS[1].params, "K")], SMALL, repeats=1, memory=False)
    assert pick(rows, "mrml", "float64")["rel_error"] == pytest.approx(swept["rel_error"], 1e-9)
    assert pd.isna(pick(rows, "r2d2", "bf16")["rel_error"])  # no exact reference
    assert pick(rows, "r2d2", "float64")["problem"] == "no exact reference"


def test_the_default_rounding_sweep_covers_every_registered_learner() -> None:
    assert {c.learner for c in rounding_sweep(Problem())} == set(LEARNERS.names())


def test_diagnose_writes_rounding_rows_table_figure_and_page(tmp_path: Path, monkeypatch) -> None:
    import memcomp.diagnose.__main__ as entry

    monkeypatch.setattr(entry, "rounding_sweep", lambda p: CONFIGS[:1])
    monkeypatch.setattr(entry, "Problem", lambda: SMALL)
    args = ["diagnose", "--out", str(tmp_path), "--repeats", "1", "--sweep", "rounding"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rounding-error.png").stat().st_size > 1000
    csv = read_hypergrad(tmp_path)
    assert csv["precision"].tolist() == ["float64", "float32", "tf32", "bf16"]
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--format", "md,csv,tex"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    for name in ("rounding_error.md", "rounding_error.tex", "rounding_error.svg", "report.html"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert 'id="table-rounding_error"' in html and "CUDA only" in html and "<svg" in html
    table = rounding_table(csv)
    (line,) = table.data.to_dict("records")
    assert line["learner"] == "maml K=3" and line["tf32 rounding"] == "CUDA only"
    assert float(line["bf16 rounding"]) > float(line["float32 rounding"]) > 0
    assert float(line["bf16 / float32 peak"]) > 0


def test_report_of_hypergrad_and_rounding_rows_keeps_them_apart(
    tmp_path: Path, rows: pd.DataFrame
) -> None:
    config = Config("mrml", CONFIGS[1].params, "K")
    hyper = pd.DataFrame(run_sweep([config], SMALL, repeats=1)).assign(precision="float64")
    pd.concat([hyper, rows]).to_csv(tmp_path / "hypergrad-error.csv", index=False)
    rep = build_hypergrad_report(tmp_path, tmp_path / "r", ("csv",), html=False)
    assert [t.name for t in rep.tables] == ["hypergrad_error", "rounding_error"]
    assert len(rep.tables[0].tidy) == 1 and len(rep.tables[1].data) == 3
    assert "tf32 rows: CUDA only (diagnose ran on a CPU)" in rep.notes


def test_diagnose_on_cuda_without_a_gpu_is_one_line_exit_2(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = CliRunner().invoke(app, ["diagnose", "--sweep", "rounding", "--device", "cuda"])
    assert res.exit_code == 2 and "no CUDA GPU is available" in res.output
    assert "Traceback" not in res.output
