"""THE results schema: prefixed parameter columns, schema-1 folders read through the mapping."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import expand, load_suite
from memcomp.config.cells import Component
from memcomp.engine import base_row
from memcomp.learners import LEARNERS, LearnerParams
from memcomp.report import build_report
from memcomp.results import read_results
from memcomp.results.schema import (
    CONFIG_COLUMNS,
    MEASURE_COLUMNS,
    RUN_COLUMNS,
    column_order,
    param_columns,
    upgrade_runs,
)

ROOT = Path(__file__).resolve().parent.parent
LEGACY = ROOT / "tests" / "data" / "results-schema1"  # written by memcomp before schema 2
LEGACY_REPORT = ROOT / "tests" / "data" / "report-schema1"  # its report tables, same code


def smoke_cell():
    return expand(load_suite(ROOT / "suites" / "smoke.yaml"))[0]


class ColumnNamedParams(LearnerParams):  # a learner whose parameters are named like columns
    seed: int = 0
    iterations: int = 0
    label: str = ""


def test_learner_parameter_named_like_a_config_column_cannot_overwrite_it() -> None:
    cell = smoke_cell()
    params = {"seed": 99, "iterations": 12345, "label": "evil", "inner_steps": 3}
    LEARNERS.register("t-columns", "test: column-named params", ColumnNamedParams)(object)
    try:
        cell = dataclasses.replace(cell, learner=Component("t-columns", params))
    finally:
        LEARNERS._entries.pop("t-columns")
    row = base_row(cell, torch.device("cpu"))
    assert row["seed"] == cell.seed and row["iterations"] == cell.train.iterations
    assert row["label"] == cell.label()
    assert (row["learner.seed"], row["learner.iterations"], row["learner.label"]) == (
        99,
        12345,
        "evil",
    )
    assert row["dataset.image_size"] == cell.dataset.params["image_size"]
    assert row["backbone.hidden"] == cell.backbone.params["hidden"]
    assert "image_size" not in row and "hidden" not in row


def test_column_groups_are_disjoint_and_ordered() -> None:
    assert not set(CONFIG_COLUMNS) & set(MEASURE_COLUMNS)
    assert set(RUN_COLUMNS) <= set(CONFIG_COLUMNS) | set(MEASURE_COLUMNS)
    order = column_order(["zzz", "mem_inner_mb", "learner.l2", "cell_id"])
    assert order[: len(RUN_COLUMNS)] == RUN_COLUMNS
    assert order[len(RUN_COLUMNS) :] == ["learner.l2", "mem_inner_mb", "zzz"]


def test_schema1_columns_are_mapped_onto_prefixed_ones() -> None:
    old = pd.DataFrame(
        {
            "cell_id": ["a"], "learner": ["maml"], "seed": [0], "image_size": [28],
            "hidden": [32], "inner_steps": [5], "mem_inner_mb": [1.0], "test_acc": [50.0],
            "backbone_params": ['{"blocks": 4, "hidden": 32}'],
        }
    )  # fmt: skip
    new = upgrade_runs(old, 1)
    assert param_columns(new.columns) == [
        "dataset.image_size", "backbone.hidden", "learner.inner_steps", "backbone.blocks",
    ]  # fmt: skip
    assert new["learner.inner_steps"].item() == 5 and new["backbone.blocks"].item() == 4
    assert new["mem_inner_mb"].item() == 1.0 and new["seed"].item() == 0
    assert upgrade_runs(new, 2) is new


def test_checked_in_schema1_folder_reads_as_schema2() -> None:
    runs = read_results(LEGACY)
    assert "results_schema" not in (LEGACY / "manifest.json").read_text()
    assert sorted(runs["learner.inner_steps"]) == [1, 2, 2]
    assert set(runs["dataset.image_size"]) == {16} and set(runs["backbone.hidden"]) == {4}
    assert "inner_steps" not in runs.columns


def test_report_on_a_schema1_folder_gives_the_tables_it_gave_before(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["report", str(LEGACY), "--out", str(tmp_path), "--format", "csv"]
    )
    assert res.exit_code == 0, res.output
    expected = sorted(p.name for p in LEGACY_REPORT.glob("*.csv"))
    got_files = {p.name for p in tmp_path.glob("*.csv")}
    # the per-phase memory table is written since report sections share one registry (issue 19)
    assert expected and got_files - set(expected) == {"phase_memory.csv"}
    assert set(expected) <= got_files
    for name in expected:
        # ``group`` is an opaque grouping key; it now lists every dataset/backbone parameter
        got, want = (
            pd.read_csv(d / name).drop(columns="group", errors="ignore")
            for d in (tmp_path, LEGACY_REPORT)
        )
        pd.testing.assert_frame_equal(got, want, obj=name)
    assert "synthetic 2w1s" in res.output and "mrml" in res.output


def test_schema2_copy_of_a_folder_gives_the_same_tables(tmp_path: Path) -> None:
    """The same results written in schema 2 (prefixed columns) report identically."""
    new = tmp_path / "new"
    new.mkdir()
    for name in ("curves.csv", "episodes.csv", "manifest.json"):
        (new / name).write_bytes((LEGACY / name).read_bytes())
    read_results(LEGACY).to_csv(new / "runs.csv", index=False)
    a = build_report(LEGACY, tmp_path / "a", ("csv",))
    b = build_report(new, tmp_path / "b", ("csv",))
    assert [t.name for t in a.tables] == [t.name for t in b.tables]
    for ta, tb in zip(a.tables, b.tables, strict=True):
        pd.testing.assert_frame_equal(ta.data, tb.data, obj=ta.name)


@pytest.mark.parametrize("modules", ["memcomp", "memcomp, memcomp.report, memcomp.results"])
def test_importing_memcomp_report_and_results_leaves_torch_unloaded(modules: str) -> None:
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False", out.stderr


def test_public_api_names_resolve() -> None:
    import memcomp

    assert memcomp.load_suite is load_suite and memcomp.read_results is read_results
    assert callable(memcomp.run_suite) and memcomp.LEARNERS.get("maml").name == "maml"
    assert callable(memcomp.register_learner)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        memcomp.nope  # noqa: B018
