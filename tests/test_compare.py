"""memcomp compare: same-seed runs show no regression; planted regressions are caught."""

from __future__ import annotations

import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_results import shared_run
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.compare import (
    REGRESSION,
    WITHIN,
    Thresholds,
    _p_value,
    compare_results,
    interval_samples,
    match_cells,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory, "a")


@pytest.fixture(scope="module")
def again(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second run of the same suite and seeds."""
    return shared_run(tmp_path_factory, "b")


def compare(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["compare", *args])
    return res.exit_code, " ".join(res.output.split())  # undo rich's wrapping


def ok_cells(run: Path) -> list[str]:
    runs = pd.read_csv(run / "runs.csv")
    return list(runs.loc[runs["status"] == "ok", "cell_id"])


def hungrier(peak_mb: float) -> float:
    """The planted memory factor: 3x, or more where 3x of a tiny cell is under 1 MB more (the
    tiny maml cell runs sequentially since execution: auto and peaks at about 0.22 MB)."""
    return max(3.0, 1.0 + 1.0 / peak_mb)


def plant(base: Path, dest: Path) -> dict[str, str]:
    """Copy ``base`` and make the hungriest cell hungrier (3x peak memory, and at least 1 MB more:
    past compare's 0.5 MB floor whatever the cell's size), the slowest other one slower (3x: its
    milliseconds are the least noisy) and another less accurate (-15 points per episode, with
    noise); returns cell id -> planted metric."""
    shutil.copytree(base, dest)
    runs = pd.read_csv(dest / "runs.csv")
    hungry = runs.loc[runs["peak_mem_mb"].idxmax(), "cell_id"]
    others = runs[(runs["status"] == "ok") & (runs["cell_id"] != hungry)]
    slow = others.loc[others["sec_per_iter"].idxmax(), "cell_id"]
    worse = next(c for c in others["cell_id"] if c != slow)
    curves = pd.read_csv(dest / "curves.csv")
    eps = pd.read_csv(dest / "episodes.csv")
    runs.loc[runs["cell_id"] == slow, "sec_per_iter"] *= 3.0
    curves.loc[curves["cell_id"] == slow, "train_seconds"] *= 3.0
    runs.loc[runs["cell_id"] == hungry, "peak_mem_mb"] *= hungrier(float(runs["peak_mem_mb"].max()))
    rng = np.random.default_rng(0)
    sel = eps["cell_id"] == worse
    eps.loc[sel, "acc"] = eps.loc[sel, "acc"] - 15.0 + rng.normal(0, 2, sel.sum())
    runs.loc[runs["cell_id"] == worse, "test_acc"] = eps.loc[sel, "acc"].mean()
    for name, df in (("runs", runs), ("curves", curves), ("episodes", eps)):
        df.to_csv(dest / f"{name}.csv", index=False)
    return {slow: "sec_per_iter", hungry: "peak_mem_mb", worse: "accuracy"}


def test_same_run_compares_equal_on_every_metric(base: Path) -> None:
    cmp = compare_results(base, base)
    assert len(cmp.matched) == 6 and not cmp.only_base and not cmp.only_new
    assert {c.verdict for c in cmp.changes} <= {WITHIN, "n/a"} and not cmp.regressions
    assert {c.metric for c in cmp.changes} == {
        "status", "accuracy", "peak_mem_mb", "sec_per_iter", "time_to_accuracy"
    }  # fmt: skip
    failed = [c for c in cmp.changes if c.metric == "status"]
    assert [(c.base, c.new) for c in failed] == [("error", "error")] * 2
    acc = [c for c in cmp.changes if c.metric == "accuracy"]
    assert all(c.p_value == 1.0 and "paired t-test over 12" in c.test for c in acc)


def test_same_seed_runs_report_no_regression(base: Path, again: Path) -> None:
    cmp = compare_results(base, again)
    assert [m[2] for m in cmp.matched] == ["id"] * 6
    # accuracy and memory are deterministic on a CPU: identical, within noise
    for c in cmp.changes:
        if c.metric in ("accuracy", "peak_mem_mb"):
            assert c.verdict == WITHIN and c.change == pytest.approx(0.0), c
    assert not [c for c in cmp.regressions if c.metric not in ("sec_per_iter", "time_to_accuracy")]
    # Tiny cells (milliseconds per iteration) timed twice on this shared, often overloaded 2-core
    # machine can differ by more than 2x (the noise between runs is far larger than between the
    # samples of one run), so the CLI check ignores time and only accuracy/memory/status can fail.
    code, out = compare(str(base), str(again), "--fail-on", "regression", "--time-tolerance", "10")
    assert code == 0, out
    assert "no regression" in out


def steady(base: Path, dest: Path) -> Path:
    """A copy of ``base`` whose curves advance at each cell's recorded seconds per iteration,
    with a deterministic +-5% jitter per interval: a loaded CI machine can make one measured
    interval 10x the others, and a 3x slowdown of such samples is then, rightly, not
    significant. The test is about the comparison, not about this machine's noise."""
    shutil.copytree(base, dest)
    runs = pd.read_csv(dest / "runs.csv").set_index("cell_id")
    curves = pd.read_csv(dest / "curves.csv").sort_values(["cell_id", "iteration"])
    for cid, grp in curves.groupby("cell_id"):
        rate = float(runs.loc[cid, "sec_per_iter"]) if cid in runs.index else float("nan")
        if not np.isfinite(rate):
            continue
        its = grp["iteration"].to_numpy(float)
        jitter = 1.0 + 0.05 * np.sin(np.arange(len(its)) + 1.0)
        curves.loc[grp.index, "train_seconds"] = np.cumsum(np.diff(np.r_[0.0, its]) * rate * jitter)
    curves.sort_index().to_csv(dest / "curves.csv", index=False)
    return dest


def test_planted_regressions_are_caught_and_fail_when_asked(base: Path, tmp_path: Path) -> None:
    base = steady(base, tmp_path / "base")
    new = tmp_path / "new"
    planted = plant(base, new)
    cmp = compare_results(base, new)
    found = {(c.cell_id, c.metric) for c in cmp.regressions}
    assert len({c.cell_id for c in cmp.changes}) == 6
    expected = set(planted.items())
    assert expected <= found
    # the slower cell also reaches its accuracy later; nothing else regressed
    slow = next(cid for cid, m in planted.items() if m == "sec_per_iter")
    assert found - expected <= {(slow, "time_to_accuracy")}
    acc = next(c for c in cmp.regressions if c.metric == "accuracy")
    assert acc.change == pytest.approx(-15.0, abs=2.0) and acc.p_value < 1e-6
    mem = next(c for c in cmp.regressions if c.metric == "peak_mem_mb")
    peak = float(pd.read_csv(base / "runs.csv")["peak_mem_mb"].max())
    assert mem.change == pytest.approx(hungrier(peak) - 1.0)
    junit = tmp_path / "compare.xml"
    html = tmp_path / "compare.html"
    code, out = compare(
        str(base), str(new), "--fail-on", "regression", "--junit", str(junit), "--html", str(html)
    )
    assert code == 1, out
    assert f"{len(found)} regression(s)" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(found))
    failed = {(c.get("name"), c.get("classname")) for c in suite if c.find("failure") is not None}
    assert {(c.cell, f"memcomp.compare.{c.metric}") for c in cmp.regressions} == failed
    assert "regression(s) beyond noise" in html.read_text()
    code, _ = compare(str(base), str(new))  # without --fail-on: report only
    assert code == 0


def test_cells_are_matched_by_configuration_when_ids_differ(base: Path, tmp_path: Path) -> None:
    new = tmp_path / "renamed"
    shutil.copytree(base, new)
    for name in ("runs", "curves", "episodes"):
        df = pd.read_csv(new / f"{name}.csv")
        df["cell_id"] = "x-" + df["cell_id"]
        df.to_csv(new / f"{name}.csv", index=False)
    cmp = compare_results(base, new)
    assert sorted(cmp.matched) == sorted((c, "x-" + c, "configuration") for c in
                                         pd.read_csv(base / "runs.csv")["cell_id"])  # fmt: skip
    assert not cmp.regressions


def test_ambiguous_or_missing_cells_stay_unmatched() -> None:
    base = pd.DataFrame({"cell_id": ["a", "b", "c"], "learner": ["m", "m", "n"], "seed": [0, 0, 1]})
    new = pd.DataFrame({"cell_id": ["d", "e"], "learner": ["m", "n"], "seed": [0, 1]})
    assert match_cells(base, new) == [("c", "e", "configuration")]  # a and b look alike


def test_no_matching_cell_is_an_input_error(base: Path, tmp_path: Path) -> None:
    new = tmp_path / "other"
    shutil.copytree(base, new)
    runs = pd.read_csv(new / "runs.csv")
    runs["cell_id"] = "y-" + runs["cell_id"]
    runs["seed"] = runs["seed"] + 100
    runs.to_csv(new / "runs.csv", index=False)
    code, out = compare(str(base), str(new))
    assert code == 2 and "no cell matches" in out


def test_failed_cell_in_new_is_a_regression(base: Path, tmp_path: Path) -> None:
    new = tmp_path / "failed"
    shutil.copytree(base, new)
    runs = pd.read_csv(new / "runs.csv")
    cid = ok_cells(base)[0]
    runs.loc[runs["cell_id"] == cid, "status"] = "oom"
    runs.to_csv(new / "runs.csv", index=False)
    (reg,) = compare_results(base, new).regressions
    assert (reg.metric, reg.base, reg.new) == ("status", "ok", "oom")


def test_p_values_match_the_t_distribution() -> None:
    a = np.zeros(5)
    # d = 1..5: t = 3 / (1.5811 / sqrt 5) = 4.2426 with 4 dof -> two-sided p = 0.01324
    assert _p_value("paired", a, np.arange(1.0, 6.0)) == pytest.approx(0.01324, abs=1e-4)
    assert _p_value("paired", a, a) == 1.0 and _p_value("paired", a, a + 2) == 0.0
    # Welch with equal sizes and spreads equals Student: means 0 and 1, sd 1, n 4 -> t = 1.414,
    # 6 dof -> p = 0.2070
    x = np.array([-1.0, -1.0, 1.0, 1.0]) * math.sqrt(0.75)
    assert _p_value("welch", x, x + 1.0) == pytest.approx(0.2070, abs=1e-3)


def test_interval_samples_drop_the_warm_up_interval() -> None:
    curve = pd.DataFrame({"iteration": [2, 4, 6, 8], "train_seconds": [3.0, 5.0, 7.2, 9.0]})
    assert interval_samples(curve) == pytest.approx([1.0, 1.1, 0.9])
    short = curve.head(2)
    assert interval_samples(short) == pytest.approx([1.5, 1.0])


def test_thresholds_decide_memory_and_time(base: Path, tmp_path: Path) -> None:
    new = tmp_path / "slightly"
    shutil.copytree(base, new)
    runs = pd.read_csv(new / "runs.csv")
    runs["peak_mem_mb"] *= 1.03  # below the 5% memory rule
    runs.to_csv(new / "runs.csv", index=False)
    cmp = compare_results(base, new)
    assert all(c.verdict != REGRESSION for c in cmp.changes if c.metric == "peak_mem_mb")
    strict = compare_results(base, new, Thresholds(memory=0.01, memory_mb=0.0))
    assert [c.metric for c in strict.regressions] == ["peak_mem_mb"] * len(ok_cells(base))
