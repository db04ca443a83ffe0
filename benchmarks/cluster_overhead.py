"""Scheduling overhead and scaling of the Ray and SLURM executors on local clusters.

Starts (inside a private network namespace, loopback only, as the cluster tests do) a Ray cluster
and a single-node SLURM, and measures:

* submit-to-start latency and result return of trivial tasks/jobs (median over ``--probes``);
* the efficiency of N = 2 workers on 2 independent memcomp cells of fixed work (a MAML cell on
  synthetic data, iterations calibrated to ``--cell-seconds`` on one thread): wall time of the two
  cells on 1 worker (Ray: one 1-CPU worker node; SLURM: array cap 1) and on 2 workers (two nodes;
  cap 2); speed-up = T(1) / T(2), the target is >= 0.9 N = 1.8.

Needs root, ``unshare`` and the ``cluster`` extra (``tests/cluster/install.sh``). Writes a JSON
report to ``--out`` and prints it.

    python benchmarks/cluster_overhead.py --out cluster_overhead.json
    python benchmarks/cluster_overhead.py --cell-seconds 30 --skip-slurm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "cluster")]

from netns import netns_command, network_interfaces  # noqa: E402


def suite_file(folder: Path, iterations: int, seeds: int = 2) -> Path:
    import yaml

    data = {
        "name": "overhead", "seeds": list(range(seeds)), "device": "cpu",
        "datasets": [{"name": "synthetic", "image_size": 28, "channels": 1, "train_classes": 10,
                      "val_classes": 5, "test_classes": 5, "images_per_class": 10}],
        "settings": [{"ways": 5, "shots": 1, "queries": 5}],
        "backbones": [{"name": "conv4", "hidden": 32}],
        "train": {"iterations": iterations, "meta_batch": 4, "eval_every": iterations,
                  "val_episodes": 2},
        "test": {"episodes": 4},
        "learners": [{"name": "maml", "inner_steps": 5, "inner_lr": 0.4}],
    }  # fmt: skip
    path = folder / f"overhead-{iterations}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def calibrate(folder: Path, seconds: float) -> tuple[int, float]:
    """Iterations for a cell of about ``seconds`` on one thread, and the measured s/iter."""
    import torch

    from memcomp.config import expand, load_suite
    from memcomp.engine import run_cell

    torch.set_num_threads(1)
    cell = expand(load_suite(suite_file(folder, 6, 1)))[0]
    t0 = time.perf_counter()
    row = run_cell(cell, torch.device("cpu")).row
    per_iter = float(row["sec_per_iter"])
    overhead = time.perf_counter() - t0 - 6 * per_iter
    return max(2, round((seconds - max(0.0, overhead)) / per_iter)), per_iter


def run_suite(path: Path, out: Path, executor: dict[str, Any]) -> float:
    """Wall seconds of running ``path``'s cells with ``executor`` (driver already connected)."""
    import torch

    from memcomp.config import expand, load_suite
    from memcomp.config.executors import executor_model
    from memcomp.exec.options import RunOptions
    from memcomp.exec.schedule import run_cells
    from memcomp.results.manifest import create_results_dir, new_results_dir

    cells = expand(load_suite(path))
    results = create_results_dir(new_results_dir(out, "overhead"), {"suite": "overhead"})
    opts = RunOptions(threads=1, executor_options=executor_model().model_validate(executor))
    t0 = time.perf_counter()
    outcomes = run_cells(cells, results, torch.device("cpu"), options=opts)
    wall = time.perf_counter() - t0
    bad = [o.row.get("error") for o in outcomes if not o.ok]
    if bad:
        raise RuntimeError(f"cells failed: {bad}")
    return wall


def ray_part(folder: Path, suite: Path, probes: int) -> dict[str, Any]:
    import ray
    from ray_cluster import ADDRESS, ray_cluster

    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out: dict[str, Any] = {}
    with ray_cluster(folder / "ray", workers=1, env=env, head_cpus=0) as cluster:
        ray.init(address=ADDRESS, logging_level="ERROR", log_to_driver=False)

        @ray.remote(num_cpus=1)
        def stamp() -> tuple[float, float]:
            start = time.time()
            return start, time.time()

        ray.get(stamp.remote())  # a warm worker, as during a suite
        starts, returns = [], []
        for _ in range(probes):
            t0 = time.time()
            ref = stamp.remote()
            s, e = ray.get(ref)
            got = time.time()
            starts.append(s - t0)
            returns.append(got - e)
        out["submit_to_start_s"] = statistics.median(starts)
        out["result_return_s"] = statistics.median(returns)
        out["one_worker_s"] = run_suite(suite, folder / "ray-1", {"kind": "ray"})
        cluster.start_node("w2")
        cluster.wait_started("w2")
        time.sleep(2.0)
        out["two_workers_s"] = run_suite(suite, folder / "ray-2", {"kind": "ray"})
        ray.shutdown()
    out["speedup"] = out["one_worker_s"] / out["two_workers_s"]
    return out


def _probe(submitted: float) -> tuple[float, float]:
    start = time.time()
    return start - submitted, time.time()


def slurm_part(folder: Path, suite: Path, probes: int) -> dict[str, Any]:
    import submitit
    from slurm_cluster import slurm_cluster

    out: dict[str, Any] = {}
    with slurm_cluster(cpus=2) as cluster:
        os.environ.update(cluster.env)
        ex = submitit.SlurmExecutor(folder=folder / "submitit" / "%j")
        ex.update_parameters(time=5, cpus_per_task=1)
        starts, returns = [], []
        for _ in range(probes):
            job = ex.submit(_probe, time.time())
            while not job.paths.result_pickle.exists():
                time.sleep(0.05)
            got = time.time()
            latency, end = job.result()
            starts.append(latency)
            returns.append(got - end)
        out["submit_to_start_s"] = statistics.median(starts)
        out["result_return_s"] = statistics.median(returns)
        base = {"kind": "slurm", "slurm": {"cpus_per_cell": 1, "time_min": 30}}
        one = {**base, "slurm": {**base["slurm"], "array_parallelism": 1}}
        two = {**base, "slurm": {**base["slurm"], "array_parallelism": 2}}
        out["one_worker_s"] = run_suite(suite, folder / "slurm-1", one)
        out["two_workers_s"] = run_suite(suite, folder / "slurm-2", two)
    out["speedup"] = out["one_worker_s"] / out["two_workers_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-seconds", type=float, default=30.0)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-slurm", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("cluster_overhead.json"))
    args = ap.parse_args()
    if network_interfaces() != ["lo"]:  # re-run inside a private network namespace
        os.execvp("unshare", netns_command([sys.executable, *sys.argv], ("/run/munge",)))
    folder = Path(tempfile.mkdtemp(prefix="mcbench-"))
    os.environ.setdefault("MEMCOMP_CACHE", str(folder / "cache"))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    iterations, per_iter = calibrate(folder, args.cell_seconds)
    suite = suite_file(folder, iterations)
    report: dict[str, Any] = {
        "cell_iterations": iterations,
        "sec_per_iter_1_thread": per_iter,
        "cpus": os.cpu_count(),
        "load_avg_before": os.getloadavg(),
    }
    if not args.skip_ray:
        report["ray"] = ray_part(folder, suite, args.probes)
    if not args.skip_slurm:
        report["slurm"] = slurm_part(folder, suite, args.probes)
    report["load_avg_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
