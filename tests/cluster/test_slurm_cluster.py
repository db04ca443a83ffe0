"""``memcomp run --executor slurm`` on a real single-node SLURM (munge, slurmdbd + MariaDB,
slurmctld, slurmd) made inside a private network namespace: a job array under a concurrency cap,
``--no-wait`` then ``status``, a cancelled job, a requeued job continuing from its checkpoint,
``--resume`` and ``report``; nothing lost, nothing duplicated, same accuracies as a local run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers_cluster import cluster_env, require, run_scenario
from slurm_cluster import MUNGE_RUN, slurm_missing

# one xdist worker runs both cluster tests (they share one local reference run)
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.xdist_group("cluster")]
SAME = ["cell_id", "status", "test_acc", "test_ci95", "best_val_acc", "final_val_acc"]


def _runs(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "runs.csv").sort_values("cell_id").reset_index(drop=True)


def test_slurm_array_cap_cancel_requeue_status_resume(
    tmp_path: Path, reference: tuple[Path, Path]
) -> None:
    require("submitit")
    why = slurm_missing()
    if why:
        pytest.skip(why)
    suite, ref_folder = reference
    ref = _runs(ref_folder)
    env = cluster_env(MEMCOMP_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "slurm"
    out.mkdir()
    report = run_scenario("slurm_scenario.py", [str(suite), str(out)], env, 900, (MUNGE_RUN,))

    assert report["submit"]["rc"] == 0 and "memcomp status" in report["submit"]["output"]
    assert report["checkpoint_seen"], report
    assert not report["queue_left"].strip(), report["queue_left"]
    status = " ".join(report["status"]["output"].split())
    assert report["status"]["rc"] == 0 and "1 cancelled" in status and "3 ok" in status, status
    assert report["resume"]["rc"] == 0, report["resume"]["output"]
    assert report["report"]["rc"] == 0, report["report"]["output"]

    folder = Path(report["folder"])
    runs = _runs(folder)
    assert len(runs) == 4 and runs["cell_id"].is_unique  # every cell once
    pd.testing.assert_frame_equal(runs[SAME], ref[SAME])  # requeue/resume change no result
    assert (runs["executor"] == "slurm").all()
    requeued = runs.set_index("cell_id").loc[report["requeued"]]
    assert requeued["slurm_restarts"] == 1 and requeued["resumed_from_iteration"] >= 2
    curves = pd.read_csv(folder / "curves.csv")
    assert not curves.duplicated(["cell_id", "iteration"]).any()
    assert len(curves) == len(pd.read_csv(ref_folder / "curves.csv"))

    # concurrency cap 1: the cells' meta-steps (as the children logged them) never overlap
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    spans = sorted(
        (
            min(s["t"] for s in steps if s["pid"] == pid),
            max(s["t"] for s in steps if s["pid"] == pid),
        )
        for pid in {s["pid"] for s in steps}
    )
    assert len(spans) >= 5  # 4 cells, the requeued one in two processes
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert any(s["restart"] == "1" for s in steps)  # the requeued cell ran again as restart 1
