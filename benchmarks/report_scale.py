"""Time ``memcomp report`` and ``memcomp compare`` on a synthetic results folder of N runs rows.

The folder is made from a real run's rows (``--template``: a results folder, e.g. one written by
``memcomp run suites/smoke.yaml``): runs.csv rows are the template's rows repeated with new cell
ids, seeds and inner steps K (so there are many settings x variants, as in a big sweep), jittered
measurements; curves.csv has ``--curve-points`` rows per cell and episodes.csv ``--episodes`` per
cell, for at most ``--max-detail`` cells (bounded: the other cells have no curve / episodes).

    python benchmarks/report_scale.py --template RUN --rows 1000 4000 200000

prints per N: wall seconds, peak RSS (MB) of each command (``resource.getrusage`` of the child)
and the size of report.html.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthesize(template: Path, out: Path, n: int, points: int, episodes: int, detail: int) -> Path:
    """Write a results folder of ``n`` runs rows built from ``template``'s rows."""
    out.mkdir(parents=True, exist_ok=True)
    tpl = pd.read_csv(template / "runs.csv", dtype={"cell_id": str})
    rng = np.random.default_rng(0)
    reps = -(-n // len(tpl))
    runs = pd.concat([tpl] * reps, ignore_index=True).iloc[:n].copy()
    i = np.arange(n)
    runs["cell_id"] = [hashlib.sha1(str(k).encode()).hexdigest()[:12] for k in i]
    runs["seed"] = (i // len(tpl)) % 50  # 50 seeds
    if "learner.inner_steps" in runs.columns:  # many K values -> many memory columns / variants
        runs["learner.inner_steps"] = 1 + (i // (len(tpl) * 50)) % 40
    for c in ("test_acc", "peak_mem_mb", "sec_per_iter", "train_seconds"):
        if c in runs.columns:
            runs[c] = pd.to_numeric(runs[c], errors="coerce") * rng.uniform(0.9, 1.1, n)
    runs.to_csv(out / "runs.csv", index=False)
    ids = runs["cell_id"].to_numpy()[:detail]
    cur = pd.DataFrame(
        {
            "cell_id": np.repeat(ids, points),
            "iteration": np.tile(np.arange(1, points + 1) * 2, len(ids)),
            "train_seconds": np.tile(np.arange(1, points + 1) * 0.5, len(ids))
            * rng.uniform(0.9, 1.1, len(ids) * points),
            "val_acc": rng.uniform(20, 90, len(ids) * points),
            "val_ci95": rng.uniform(1, 5, len(ids) * points),
        }
    )
    cur.to_csv(out / "curves.csv", index=False)
    eps = pd.DataFrame(
        {
            "cell_id": np.repeat(ids, episodes),
            "episode": np.tile(np.arange(episodes), len(ids)),
            "acc": rng.uniform(0, 100, len(ids) * episodes),
        }
    )
    eps.to_csv(out / "episodes.csv", index=False)
    if (template / "manifest.json").exists():
        shutil.copy(template / "manifest.json", out / "manifest.json")
    return out


def timed(cmd: list[str], limit: float) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of this child, return code; -9 on timeout)."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        rc = subprocess.run(cmd, capture_output=True, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        rc = -9
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB on Linux, max so far
    return wall, (peak if peak > before else float("nan")) / 1024, rc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--template", type=Path, required=True, help="a real run's results folder")
    p.add_argument("--rows", type=int, nargs="+", default=[1000, 4000, 200000])
    p.add_argument("--curve-points", type=int, default=10)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--max-detail", type=int, default=2000, help="cells with curves/episodes")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    p.add_argument("--skip-compare", action="store_true")
    a = p.parse_args()
    exe = [sys.executable, "-m", "memcomp"]
    print("rows  command  wall_s  peak_rss_mb  rc  html_mb")
    for n in a.rows:
        # one child per measurement keeps RUSAGE_CHILDREN's max per command
        with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
            base = synthesize(a.template, Path(tmp) / "base", n, a.curve_points, a.episodes,
                              a.max_detail)  # fmt: skip
            new = Path(tmp) / "new"
            shutil.copytree(base, new)
            w, rss, rc = _isolated(exe + ["report", str(base)], a.timeout)
            page = base / "report" / "report.html"
            size = page.stat().st_size / 2**20 if page.exists() else float("nan")
            print(f"{n}  report  {w:.1f}  {rss:.0f}  {rc}  {size:.1f}", flush=True)
            if not a.skip_compare:
                w, rss, rc = _isolated(exe + ["compare", str(base), str(new)], a.timeout)
                print(f"{n}  compare  {w:.1f}  {rss:.0f}  {rc}  -", flush=True)


def _isolated(cmd: list[str], limit: float) -> tuple[float, float, int]:
    """Run ``timed`` in a fresh Python so RUSAGE_CHILDREN's maximum is this command's alone."""
    code = (
        f"import sys,json;sys.path.insert(0,{str(Path(__file__).parent)!r});"
        "from report_scale import timed;"
        f"print(json.dumps(timed({cmd!r},{limit!r})))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    import json

    return tuple(json.loads(res.stdout.strip().splitlines()[-1]))  # type: ignore[return-value]


if __name__ == "__main__":
    main()
