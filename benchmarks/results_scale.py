"""The results store at scale: appending N synthetic cells, then ``memcomp report`` over them.

``python benchmarks/results_scale.py --cells N [--episodes 600] [--curve 20] [--html]`` writes N
cells through ``ResultsDir.append`` (what ``memcomp run`` calls after every cell; fsync on) into a
temporary folder and prints the seconds it took and the peak RSS, then runs
``python -m memcomp report DIR`` (``--no-html`` unless ``--html``) in a child process and prints
its seconds and peak RSS. Only the appends are timed (each cell is made just before); the peak
RSS of the append is the whole process's. Rows are realistic: every runs.csv column of the
schema, with the learner parameters of maml / protonet / imaml in turn (so columns differ
between cells), 600 test episodes and 20 curve points per cell. The script measures whatever
memcomp is imported, so the same command measures another checkout:
``PYTHONPATH=/path/to/checkout python benchmarks/results_scale.py --cells 300`` (issue 19:
before and after the append).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LEARNERS: dict[str, dict[str, Any]] = {
    "maml": {"learner.inner_steps": 5, "learner.inner_lr": 0.01, "learner.first_order": False},
    "protonet": {"learner.distance": "euclidean"},
    "imaml": {"learner.inner_steps": 10, "learner.lam": 2.0, "learner.cg_steps": 5},
}


def cell(i: int, episodes: int, points: int) -> tuple[dict[str, Any], list[dict], list[float]]:
    """One synthetic cell: its runs row, curve and test-episode accuracies."""
    rnd = random.Random(i)
    learner = list(LEARNERS)[i % len(LEARNERS)]
    cid = f"{rnd.getrandbits(48):012x}"
    acc = [round(rnd.uniform(20, 100), 2) for _ in range(episodes)]
    row: dict[str, Any] = {
        "cell_id": cid, "suite": "scale", "label": f"{learner}, 5-way 1-shot, seed {i}",
        "status": "ok", "error": "", "dataset": "omniglot", "ways": 5, "shots": 1, "queries": 15,
        "backbone": "conv4", "learner": learner, "seed": i, "test_acc": sum(acc) / len(acc),
        "test_ci95": rnd.uniform(0.5, 2), "test_std": rnd.uniform(5, 15),
        "test_episodes": episodes, "test_protocol": "standard", "best_val_acc": rnd.uniform(40, 99),
        "final_val_acc": rnd.uniform(40, 99), "peak_mem_mb": rnd.uniform(10, 5000),
        "mem_baseline_mb": rnd.uniform(1, 100), "mem_reserved_mb": rnd.uniform(10, 6000),
        "mem_source": "cuda", "predicted_peak_mb": rnd.uniform(10, 5000),
        "execution_mode": "sequential", "task_chunk_used": 1, "oom_retries": 0,
        "chunk_reason": "auto: fits", "memory_budget_mb": 70000.0,
        "sec_per_iter": rnd.uniform(0.01, 2), "train_seconds": rnd.uniform(10, 9000),
        "iterations": 1000, "diverged_at": None, "cg_residual": None, "lower_grad_norm": None,
        "meta_batch": 4, "outer_lr": 0.001, "optimizer": "adam", "dtype": "float32",
        "precision": "float32", "matmul_tf32": False, "cudnn_tf32": True,
        "float32_matmul_precision": "highest", "cudnn_benchmark": False,
        "cudnn_deterministic": False, "autocast_dtype": "none",
        "bn_mode": "transductive (per-task batch stats)", "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3", "torch_version": "2.5.1",
        "memcomp_version": "0.9.0", "cpu_threads": 16, "dataset_checksum": "sha256:" + cid * 4,
        "protocol": "test=standard; episodes=600 fixed (seed 20011); ci95=1.96*std/sqrt(n)",
        "finished_at": f"2026-12-05T10:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
        "dataset_params": '{"image_size": 28}', "backbone_params": '{"hidden": 64}',
        "dataset.image_size": 28, "backbone.hidden": 64, **LEARNERS[learner],
        "mem_inner_mb": rnd.uniform(1, 1000), "mem_outer_mb": rnd.uniform(1, 1000),
    }  # fmt: skip
    curve = [
        {"cell_id": cid, "iteration": (k + 1) * 50, "train_seconds": (k + 1) * 4.5,
         "val_acc": rnd.uniform(20, 99), "val_ci95": rnd.uniform(0.5, 3)}
        for k in range(points)
    ]  # fmt: skip
    return row, curve, acc


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--curve", type=int, default=20)
    ap.add_argument("--html", action="store_true", help="report with its HTML page too")
    ap.add_argument("--keep", type=Path, help="write the folder here and keep it")
    args = ap.parse_args(argv)

    import memcomp
    from memcomp.results.store import ResultsDir

    root = Path(tempfile.mkdtemp(prefix="results-scale-"))
    folder = args.keep or root / "scale" / "run"
    rd = ResultsDir(folder)
    print(f"memcomp from {Path(memcomp.__file__).parent}", flush=True)
    append_s = 0.0
    for k in range(1, args.cells + 1):
        row, curve, eps = cell(k - 1, args.episodes, args.curve)  # made outside the timing
        t0 = time.perf_counter()
        rd.append(row, curve, eps)
        append_s += time.perf_counter() - t0
        if k % max(1, args.cells // 10) == 0:
            print(f"  {k} cells: {append_s:.1f} s", flush=True)
    sizes = {p.name: p.stat().st_size / 1e6 for p in sorted(folder.glob("*.csv"))}
    print(
        f"append {args.cells} cells: {append_s:.2f} s ({append_s / args.cells * 1e3:.2f} ms/cell), "
        f"peak RSS {peak_rss_mb():.0f} MB; "
        + ", ".join(f"{n} {mb:.1f} MB" for n, mb in sizes.items())
    )
    cmd = [sys.executable, "-m", "memcomp", "report", str(folder), "--format", "md,csv"]
    cmd += [] if args.html else ["--no-html"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    report_s = time.perf_counter() - t0
    tail = (res.stdout + res.stderr).strip().splitlines()[-1:] or [""]
    print(
        f"report ({' '.join(cmd[3:5])}{'' if args.html else ' --no-html'}): {report_s:.2f} s, "
        f"peak RSS {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB, rc {res.returncode} "
        f"({tail[0][:80]})"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
