"""Runs INSIDE a private network namespace (see test_ray_cluster.py): a real Ray cluster (head +
2 workers of 1 CPU), then ``memcomp run --executor ray`` twice:

1. ``kill``: while a cell runs on a worker node, that node is killed by PID;
2. ``interrupt``: Ctrl-C (SIGINT) after the first finished cell, then ``--resume`` on Ray;

and, from every cell child's per-step log, the most cells that ever ran at once.

Prints one JSON line with what happened; the test checks the results folders.
Usage: python ray_scenario.py SUITE OUT
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from netns import cmdline, namespace_pids
from ray_cluster import ADDRESS, ray_cluster

MARKER = "memcomp.exec.child"  # the command line of a cell child


def memcomp(*args: str) -> list[str]:
    return [sys.executable, "-m", "memcomp", "run", *args]


def run_kill(cluster, suite: Path, out: Path, env: dict[str, str]) -> dict:
    cmd = memcomp(str(suite), "--executor", "ray", "--ray-address", ADDRESS, "--device", "cpu",
                  "--threads", "1", "--out", str(out))  # fmt: skip
    log = open(out.parent / "kill-run.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    killed, deadline = None, time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        node = cluster.node_running(MARKER)
        if node is not None:
            time.sleep(2.0)  # well inside the cell (it takes several seconds)
            if cluster.node_running(MARKER) == node:
                cluster.kill_node(node)
                killed = node
        time.sleep(0.2)
    rc = proc.wait(timeout=300)
    return {"rc": rc, "killed": killed, "log": (out.parent / "kill-run.log").read_text()[-3000:]}


def run_interrupt(suite: Path, out: Path, env: dict[str, str]) -> dict:
    cmd = memcomp(str(suite), "--executor", "ray", "--ray-address", ADDRESS, "--device", "cpu",
                  "--threads", "1", "--out", str(out))  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list(out.glob("*/*/runs.csv"))
        if runs and len(runs[0].read_text().strip().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=120)
    t0 = time.monotonic()
    lingering: list[str] = []
    while time.monotonic() - t0 < 20:
        # only this namespace's processes: /proc also shows other users' memcomp runs
        lingering = [cmdline(p)[:200] for p in namespace_pids() if MARKER in cmdline(p)]
        if not lingering:
            break
        time.sleep(0.5)
    folder = next(out.glob("*/*/runs.csv")).parent
    resumed = subprocess.run(
        memcomp(str(suite), "--executor", "ray", "--ray-address", ADDRESS, "--device", "cpu",
                "--threads", "1", "--resume", str(folder)),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return {
        "rc": proc.returncode, "output": text[-3000:], "cells_left_running": lingering,
        "folder": str(folder), "resume_rc": resumed.returncode,
        "resume_output": (resumed.stdout + resumed.stderr)[-3000:],
    }  # fmt: skip


def max_concurrent(log: Path) -> int:
    """Most cell children training at one instant, from fake-slow's per-step log (pid, time)."""
    spans: dict[int, list[float]] = {}
    for line in log.read_text().splitlines():
        e = json.loads(line)
        span = spans.setdefault(e["pid"], [e["t"], e["t"]])
        span[0], span[1] = min(span[0], e["t"]), max(span[1], e["t"])
    edges = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    running = most = 0
    for _, step in edges:  # at equal times an end (-1) sorts first: touching spans don't overlap
        running += step
        most = max(most, running)
    return most


def main() -> None:
    suite, out = Path(sys.argv[1]), Path(sys.argv[2])
    # every cell child (started by the nodes, which get this env) logs its meta-steps here
    env = {**os.environ, "MEMCOMP_TEST_ENV_LOG": str(out / "steps.jsonl")}
    report: dict = {}
    t0 = time.monotonic()
    with ray_cluster(out / "cluster", workers=2, env=env) as cluster:
        report["cluster_start_s"] = round(time.monotonic() - t0, 1)
        report["kill"] = run_kill(cluster, suite, out / "kill", env)
        report["interrupt"] = run_interrupt(suite, out / "interrupt", env)
        report["cluster_cpus"] = len(cluster.nodes)  # 1 CPU per node, the head's included
    report["max_concurrent_cells"] = max_concurrent(out / "steps.jsonl")
    print("SCENARIO " + json.dumps(report))


if __name__ == "__main__":
    main()
