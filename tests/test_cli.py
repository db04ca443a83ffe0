"""The command line end to end: run -> results folder -> report, exit codes, listings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.results.schema import CURVE_COLUMNS, RUN_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "suites" / "smoke.yaml"
# Columns that depend on the clock or the moment, not on the computation.
TIMING = {"sec_per_iter", "train_seconds", "finished_at", "traceback"}

runner = CliRunner()


def _run(out: Path, *extra: str) -> Path:
    res = runner.invoke(
        app, ["run", str(SMOKE), "--out", str(out), "--isolation", "inline", *extra]
    )
    assert res.exit_code == 0, res.output
    (folder,) = (out / "smoke").iterdir()
    return folder


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("results"))


def test_run_writes_one_ok_row_per_cell_with_provenance(smoke_results: Path) -> None:
    runs = pd.read_csv(smoke_results / "runs.csv")
    assert len(runs) == 6
    assert set(RUN_COLUMNS) <= set(runs.columns)
    assert (runs["status"] == "ok").all(), runs[["learner", "status", "error"]]
    assert set(runs["learner"]) == {"maml", "fomaml", "anil", "itd-bio", "imaml", "mrml"}
    assert (runs["test_episodes"] == 20).all()
    assert runs["test_acc"].between(0, 100).all() and (runs["test_ci95"] > 0).all()
    assert (runs["mem_source"] == "cpu-estimate").all() and (runs["peak_mem_mb"] > 0).all()
    assert (runs["device"] == "cpu").all() and runs["torch_version"].notna().all()
    assert runs.loc[runs.learner == "mrml", "test_protocol"].item() == "head-finetune"
    assert runs.loc[runs.learner.isin(["mrml", "imaml"]), "cg_residual"].notna().all()
    curves = pd.read_csv(smoke_results / "curves.csv")
    assert list(curves.columns) == CURVE_COLUMNS
    assert sorted(curves["iteration"].unique()) == [2, 4]
    episodes = pd.read_csv(smoke_results / "episodes.csv")
    assert len(episodes) == 6 * 20
    # the recorded mean and CI are those of the stored per-episode accuracies
    for cid, acc in episodes.groupby("cell_id")["acc"]:
        row = runs.set_index("cell_id").loc[cid]
        assert row["test_acc"] == pytest.approx(acc.mean())
        assert row["test_ci95"] == pytest.approx(1.96 * acc.std(ddof=1) / len(acc) ** 0.5)
    manifest = json.loads((smoke_results / "manifest.json").read_text())
    assert manifest["suite"] == "smoke" and "torch_version" in manifest
    assert manifest["results_schema"] == 2  # parameters are prefixed columns
    assert runs["learner.inner_steps"].notna().all() and runs["backbone.hidden"].notna().all()
    assert not {"inner_steps", "image_size", "hidden"} & set(runs.columns)
    assert set(manifest["cells"]) == set(runs["cell_id"])


@pytest.mark.slow
def test_same_seed_same_cpu_gives_identical_results_table(
    smoke_results: Path, tmp_path: Path
) -> None:
    again = _run(tmp_path)
    a, b = (pd.read_csv(p / "runs.csv") for p in (smoke_results, again))
    keep = [c for c in a.columns if c not in TIMING]
    pd.testing.assert_frame_equal(a[keep], b[keep])
    ca, cb = (
        pd.read_csv(p / "curves.csv").drop(columns="train_seconds") for p in (smoke_results, again)
    )
    pd.testing.assert_frame_equal(ca, cb)


def test_report_writes_tables_and_plots(smoke_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = runner.invoke(
        app, ["report", str(smoke_results.parent), "--out", str(out), "--format", "md,tex,csv"]
    )
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"accuracy.md", "accuracy.tex", "accuracy.csv", "memory.png", "memory.svg"} <= names
    assert {"val_vs_time.png", "time_to_accuracy.md"} <= names
    acc = pd.read_csv(out / "accuracy.csv")
    assert len(acc) == 6


def test_dry_run_lists_cells_and_writes_nothing(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(SMOKE), "--out", str(tmp_path), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "6" in res.output and "mrml" in res.output
    assert not any(tmp_path.iterdir())


def test_only_filters_cells(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(SMOKE), "--dry-run", "--only", "mrml,anil"])
    assert res.exit_code == 0, res.output
    assert "mrml" in res.output and "anil" in res.output and "imaml" not in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "missing.yaml"], "cannot read"),
        (["report", "/nonexistent/results"], "no runs.csv"),
        (["report", ".", "--format", "pdf"], "--format"),
        (["list", "learnrs"], "did you mean 'learners'"),
        (["run", str(SMOKE), "--device", "tpu"], "tpu"),
    ],
)
def test_bad_input_exits_2_with_one_clean_message(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert "Traceback" not in res.output


def test_invalid_suite_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("inner_lr: 0.4}", "inner_lr: -0.4}", 1))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "bad.yaml:" in res.output and "learners[0].inner_lr" in res.output


def test_validate_list_and_schema() -> None:
    res = runner.invoke(app, ["validate", str(SMOKE)])
    assert res.exit_code == 0 and "6 cells" in res.output
    res = runner.invoke(app, ["list", "learners"])
    assert res.exit_code == 0
    for name in ("maml", "fomaml", "anil", "itd-bio", "imaml", "mrml"):
        assert name in res.output
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.output)
    assert "learners" in json.dumps(schema) and "mrml" in json.dumps(schema)


def test_python_dash_m_and_help_examples() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memcomp", "run", "--help"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert "Examples" in out.stdout and "memcomp run suites/quickstart.yaml" in out.stdout


def test_validate_check_data_reports_missing_dataset(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    text = SMOKE.read_text().replace(
        "datasets:   [{name: glyphs, image_size: 28}]",
        f"datasets:   [{{name: mini-imagenet, root: {tmp_path / 'nothing'}}}]",
    )
    suite.write_text(text)
    assert runner.invoke(app, ["validate", str(suite)]).exit_code == 0  # schema only
    res = runner.invoke(app, ["validate", str(suite), "--check-data"])
    assert res.exit_code == 2, res.output
    assert "s.yaml:" in res.output and "datasets[0]" in res.output and "mini-imagenet" in res.output


def test_run_on_a_real_format_dataset_given_by_root(tmp_path: Path) -> None:
    """A suite naming a real dataset by `root` runs end to end (tiny CIFAR-100 archive)."""
    import data_formats

    data_formats.write_cifar_dir(tmp_path / "cifar", n_train=3, n_test=2)
    suite = tmp_path / "real.yaml"
    suite.write_text(
        SMOKE.read_text()
        .replace(
            "datasets:   [{name: glyphs, image_size: 28}]",
            f"datasets:   [{{name: cifar-fs, root: {tmp_path / 'cifar'}, strict: false}}]",
        )
        .replace(
            "settings:   [{ways: 5, shots: 1, queries: 5}]",
            "settings:   [{ways: 5, shots: 1, queries: 2}]",
        )  # fmt: skip
        .replace("name: smoke", "name: real")
    )
    res = runner.invoke(
        app, ["run", str(suite), "--out", str(tmp_path / "res"), "--isolation", "inline",
              "--only", "mrml"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "res" / "real").iterdir()
    runs = pd.read_csv(folder / "runs.csv")
    assert runs["status"].tolist() == ["ok"] and runs["dataset"].tolist() == ["cifar-fs"]
    assert runs["dataset.image_size"].tolist() == [32] and isinstance(
        runs["dataset_checksum"][0], str
    )


def test_threads_option_is_applied_and_recorded(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        folder = _run(tmp_path, "--only", "mrml", "--threads", "1")
    finally:
        torch.set_num_threads(before)
    runs = pd.read_csv(folder / "runs.csv")
    assert runs["cpu_threads"].tolist() == [1]
    res = runner.invoke(app, ["run", str(SMOKE), "--threads", "0", "--dry-run"])
    assert res.exit_code == 2 and "--threads" in res.output


def test_parallel_jobs_share_the_cores() -> None:
    from memcomp.exec.schedule import RunOptions

    assert RunOptions(jobs=1).cell_threads() is None
    assert RunOptions(jobs=2).cell_threads() == max(1, (__import__("os").cpu_count() or 1) // 2)
    assert RunOptions(jobs=4, threads=3).cell_threads() == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", str(SMOKE), "--isolation", "thread", "--dry-run"], "--isolation"),
        (["run", str(SMOKE), "--jobs", "0", "--dry-run"], "--jobs"),
        (["run", str(SMOKE), "--device", "cuda:7", "--dry-run"], "--device"),
        (["check", "budgets/ci.yaml", "--device", "tpu"], "--device"),
        (["report", ".", "--format", "md,pdf"], "unknown format 'pdf'"),
    ],
)
def test_option_choices_and_ranges_are_checked_by_the_command_line(
    args: list[str], needle: str
) -> None:
    """Enum / min= options: Typer refuses a bad value before any work (exit 2, no traceback)."""
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
