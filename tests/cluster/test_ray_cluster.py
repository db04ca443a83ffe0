"""``memcomp run --executor ray`` on a real Ray cluster (head + 2 workers, 1 CPU each) made inside
a private network namespace: same table as a local run, a worker node killed mid-cell loses and
duplicates nothing, Ctrl-C cancels the cluster's tasks and ``--resume`` finishes the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers_cluster import cluster_env, require, run_scenario

# one xdist worker runs both cluster tests (they share one local reference run)
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.xdist_group("cluster")]
SAME = ["cell_id", "status", "test_acc", "test_ci95", "best_val_acc", "final_val_acc"]


def _runs(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "runs.csv").sort_values("cell_id").reset_index(drop=True)


def test_ray_cluster_kill_interrupt_resume(tmp_path: Path, reference: tuple[Path, Path]) -> None:
    require("ray")
    env = cluster_env(MEMCOMP_CACHE=str(tmp_path / "cache"))
    suite, ref_folder = reference
    ref = _runs(ref_folder)
    report = run_scenario("ray_scenario.py", [str(suite), str(tmp_path / "ray")], env, 600)

    kill = report["kill"]
    assert kill["killed"] in ("w1", "w2"), kill
    assert kill["rc"] == 0, kill["log"]
    assert "1 retried" in " ".join(kill["log"].split())  # the per-node summary says so
    folder = next((tmp_path / "ray" / "kill").glob("*/*/runs.csv")).parent
    runs = _runs(folder)
    assert len(runs) == len(ref) == 4 and runs["cell_id"].is_unique  # every cell once
    pd.testing.assert_frame_equal(runs[SAME], ref[SAME])  # same seeds: the same accuracies
    assert (runs["executor"] == "ray").all()
    retried = runs[runs["attempts"] > 1]
    assert len(retried) == 1, runs[["cell_id", "attempts", "retry_reasons"]]
    reasons = json.loads(retried["retry_reasons"].iloc[0])
    assert len(reasons) == 1 and "attempt 1" in reasons[0]
    curves = pd.read_csv(folder / "curves.csv")
    assert not curves.duplicated(["cell_id", "iteration"]).any()
    assert set(curves["cell_id"]) == set(ref["cell_id"])
    episodes = pd.read_csv(folder / "episodes.csv")
    assert (episodes.groupby("cell_id").size() == 5).all() and episodes["cell_id"].nunique() == 4

    stop = report["interrupt"]
    assert stop["rc"] == 130 and "resume with:" in stop["output"], stop["output"]
    assert not stop["cells_left_running"], (
        f"Ctrl-C left cells running: {stop['cells_left_running']}"
    )
    assert stop["resume_rc"] == 0, stop["resume_output"]
    resumed = _runs(Path(stop["folder"]))
    pd.testing.assert_frame_equal(resumed[SAME], ref[SAME])
    # never more cells at once than the cluster has CPUs (a task must not lend its CPU away)
    assert 2 <= report["max_concurrent_cells"] <= report["cluster_cpus"], report
