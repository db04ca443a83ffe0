"""The report's "Peak memory and time per precision" table: cells that differ only in precision
side by side (bf16 and float64 relative to float32), from runs.csv and through ``memcomp
report`` on a real run in which bf16 measurably cuts the activation memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report import build_report
from memcomp.report.precision_tables import precision_data, precision_table

BASE = {
    "dataset": "synthetic", "ways": 5, "shots": 5, "queries": 5, "backbone": "conv4",
    "dataset.image_size": 32, "backbone.hidden": 64, "learner.inner_steps": 5,
    "mem_source": "cpu-estimate", "test_acc": 50.0,
}  # fmt: skip


def row(learner: str, precision: str | None, mb: float, sec: float, **kw: object) -> dict:
    out = {**BASE, "learner": learner, "status": "ok", "peak_mem_mb": mb, "sec_per_iter": sec}
    out["dtype"] = "float64" if precision == "float64" else "float32"
    if precision is not None:
        out["precision"] = precision
    return {**out, **kw}


def test_cells_differing_only_in_precision_are_set_side_by_side() -> None:
    runs = pd.DataFrame(
        [
            row("maml", "float32", 250.0, 0.7, seed=0),
            row("maml", "float32", 262.0, 0.9, seed=1),  # seeds are averaged
            row("maml", "bf16", 128.0, 0.4, seed=0),
            row("maml", "float64", 512.0, 2.4, seed=0),
            row("maml", "tf32", float("nan"), float("nan"), seed=0, status="skipped"),
            row("mrml", "float32", 48.0, 0.1, seed=0),  # one precision only: not compared
        ]
    )
    table = precision_table(runs)
    (line,) = table.data.to_dict("records")
    assert line["variant"] == "maml"  # the precision is a column, not part of the variant
    assert (line["float32 MB"], line["float32 s/iter"]) == ("256.0", "0.8")
    assert (line["bf16 MB"], line["float64 MB"], line["tf32 MB"]) == ("128.0", "512.0", "SKIPPED")
    assert line["bf16 / float32 MB"] == "0.50" and line["bf16 / float32 s/iter"] == "0.50"
    assert line["float64 / float32 MB"] == "2.00" and line["float64 / float32 s/iter"] == "3.00"
    tidy = table.tidy.set_index("precision")
    assert tidy.at["float32", "n_runs"] == 2 and tidy.at["float32", "peak_mem_mb"] == 256.0
    assert "memory source cpu-estimate" in table.note


def test_rows_written_before_the_precision_column_use_their_dtype() -> None:
    runs = pd.DataFrame([row("maml", None, 100.0, 1.0), row("maml", None, 200.0, 3.0)])
    runs.loc[1, "dtype"] = "float64"
    got = precision_data(runs)
    assert got["precision"].tolist() == ["float32", "float64"]
    assert precision_table(runs).data["float64 / float32 MB"].tolist() == ["2.00"]


def test_no_table_without_a_precision_comparison() -> None:
    assert precision_table(pd.DataFrame([row("maml", "float32", 1.0, 1.0)])).data.empty
    assert precision_table(pd.DataFrame()).data.empty


@pytest.fixture(scope="module")
def precision_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("precision-run")
    suite = {
        "name": "prec", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "synthetic", "image_size": 16, "channels": 1, "train_classes": 5,
                      "val_classes": 3, "test_classes": 3, "images_per_class": 6}],
        "settings": [{"ways": 3, "shots": 1, "queries": 3}],
        "backbones": [{"name": "conv4", "hidden": 16, "blocks": 3}],
        "train": {"iterations": 2, "meta_batch": 1, "eval_every": 100, "val_episodes": 1},
        "test": {"episodes": 1},
        "learners": [{"name": "maml", "inner_steps": 2, "inner_lr": 0.1,
                      "execution": "sequential"}],
        "parts": [{"name": p, "train": {"precision": p}} for p in ("float32", "tf32", "bf16")],
    }  # fmt: skip
    path = out / "prec.yaml"
    path.write_text(yaml.safe_dump(suite))
    res = CliRunner().invoke(
        app, ["run", str(path), "--out", str(out), "--isolation", "inline", "--threads", "1"]
    )
    assert res.exit_code == 0, res.output  # the tf32 cell is skipped: finished
    return next((out / "prec").glob("*/runs.csv")).parent


def test_report_of_a_real_run_shows_bf16_cutting_activation_memory(precision_run: Path) -> None:
    rep = build_report(precision_run, precision_run / "report", ("md", "csv"))
    table = rep.table("precision")
    (line,) = table.data.to_dict("records")
    assert line["tf32 MB"] == "SKIPPED"
    assert 0.4 < float(line["bf16 / float32 MB"]) < 0.75  # bf16 activations, int64 pool indices
    assert (precision_run / "report" / "precision.md").is_file()
    res = CliRunner().invoke(app, ["report", str(precision_run)])
    assert res.exit_code == 0, res.output
    html = (precision_run / "report" / "report.html").read_text()
    assert 'id="table-precision"' in html and "Peak memory and time per precision" in html
