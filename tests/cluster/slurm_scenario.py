"""Runs INSIDE a private network (and mount) namespace, see test_slurm_cluster.py: a real
single-node SLURM with accounting, then ``memcomp run --executor slurm`` on a small suite with a
concurrency cap of 1 and ``--no-wait``; while it runs, the first cell is requeued once it has a
checkpoint and the last cell's job is cancelled as soon as it runs; then ``memcomp status``,
``--resume`` (waiting) and ``memcomp report``. Prints one JSON line; the test checks the folder.
Usage: python slurm_scenario.py SUITE OUT
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from slurm_cluster import slurm_cluster


def main() -> None:
    suite, out = Path(sys.argv[1]), Path(sys.argv[2])
    report: dict = {}
    t0 = time.monotonic()
    with slurm_cluster() as cluster:
        report["cluster_start_s"] = round(time.monotonic() - t0, 1)
        env = {**os.environ, **cluster.env, "MEMCOMP_TEST_ENV_LOG": str(out / "steps.jsonl")}

        def memcomp(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "memcomp", *args], env=env,
                                  capture_output=True, text=True, timeout=timeout)  # fmt: skip

        sub = memcomp("run", str(suite), "--executor", "slurm", "--device", "cpu", "--out",
                      str(out), "--slurm-array-parallelism", "1", "--no-wait")  # fmt: skip
        report["submit"] = {"rc": sub.returncode, "output": sub.stdout + sub.stderr}
        folder = next(out.glob("*/*/manifest.json")).parent
        report["folder"] = str(folder)
        jobs = json.loads((folder / "slurm_jobs.json").read_text())
        cells = list(json.loads((folder / "manifest.json").read_text())["cells"])
        first, last = jobs[cells[0]], jobs[cells[-1]]
        ckpt = folder / "checkpoints" / f"{cells[0]}.pt"
        deadline = time.monotonic() + 240
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        report["checkpoint_seen"] = ckpt.exists()
        cluster.run(["scontrol", "requeue", first])
        report["requeued"] = cells[0]
        deadline = time.monotonic() + 60  # a requeued job waits (BeginTime) unless released
        while time.monotonic() < deadline:
            state = cluster.run(["squeue", "-h", "-j", first, "-o", "%T %r"], check=False)
            if "PENDING" in state and "BeginTime" in state:
                cluster.run(["scontrol", "update", f"jobid={first}", "StartTime=now"])
                break
            time.sleep(0.3)
        deadline = time.monotonic() + 400  # the last cell, queued behind the cap, starts last
        while time.monotonic() < deadline:
            if "RUNNING" in cluster.run(["squeue", "-h", "-j", last, "-o", "%T"], check=False):
                cluster.run(["scancel", last])  # cancelled while it runs
                report["cancelled"] = cells[-1]
                break
            time.sleep(0.3)
        while cluster.run(["squeue", "-h"]).strip() and time.monotonic() < deadline:
            time.sleep(1.0)
        report["queue_left"] = cluster.run(["squeue", "-h"])
        deadline = time.monotonic() + 15  # accounting catches up with the last state changes
        while time.monotonic() < deadline:
            states = cluster.run(["sacct", "-n", "-P", "-X", "-o", "State"], check=False)
            if states.strip() and not any(s in states for s in ("PENDING", "RUNNING", "REQUEUE")):
                break
            time.sleep(0.3)
        st = memcomp("status", str(folder))
        report["status"] = {"rc": st.returncode, "output": st.stdout + st.stderr}
        res = memcomp("run", str(suite), "--executor", "slurm", "--device", "cpu", "--resume",
                      str(folder), timeout=400)  # fmt: skip
        report["resume"] = {"rc": res.returncode, "output": (res.stdout + res.stderr)[-3000:]}
        rep = memcomp("report", str(folder))
        report["report"] = {"rc": rep.returncode, "output": (rep.stdout + rep.stderr)[-2000:]}
        report["sacct"] = cluster.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State"])
    print("SCENARIO " + json.dumps(report))


if __name__ == "__main__":
    main()
