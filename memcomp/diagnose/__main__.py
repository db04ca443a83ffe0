"""``python -m memcomp.diagnose [--out DIR] [--repeats N] [--sweep all|hypergrad|rounding]
[--device cpu|cuda]``: the default diagnostics sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from memcomp.diagnose.rounding import ROUNDING_PRECISIONS, rounding_sweep, run_rounding
from memcomp.diagnose.sweep import Problem, default_sweep, run_sweep
from memcomp.fsutil import atomic_write_text
from memcomp.measure.device import resolve_device
from memcomp.report.hypergrad import (
    hypergrad_rows,
    plot_error_frontier,
    plot_rounding,
    rounding_rows,
)

SWEEPS = ("all", "hypergrad", "rounding")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memcomp.diagnose", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/diagnose"))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--sweep", choices=SWEEPS, default="all",
        help="hypergrad: error against the exact hypergradient (float64, CPU); rounding: each "
        "learner's float32/tf32/bf16 meta-gradient against its float64 one; all: both",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cpu", help="where the rounding rows run (tf32 needs cuda)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    problem = Problem()
    parts = []
    if args.sweep in ("all", "hypergrad"):
        rows = pd.DataFrame(run_sweep(default_sweep(problem), problem, repeats=args.repeats))
        parts.append(rows.assign(precision="float64", status="ok"))
    if args.sweep in ("all", "rounding"):
        configs = rounding_sweep(problem)
        got = run_rounding(configs, problem, ROUNDING_PRECISIONS, device, repeats=args.repeats)
        parts.append(pd.DataFrame(got))
    rows = pd.concat(parts, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "hypergrad-error.csv"
    atomic_write_text(csv, rows.to_csv(index=False))
    written = [csv]
    hyper, rounding = hypergrad_rows(rows), rounding_rows(rows)
    if len(hyper):
        plot_error_frontier(hyper).savefig(args.out / "hypergrad-error.png", dpi=120)
        written.append(args.out / "hypergrad-error.png")
        cols = ["learner", "varies", "rel_error", "cosine", "sec_per_meta_grad", "peak_mem_mb"]
        print(hyper[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if len(rounding):
        plot_rounding(rounding).savefig(args.out / "rounding-error.png", dpi=120)
        written.append(args.out / "rounding-error.png")
        cols = ["learner", "precision", "status", "rounding_error", "rounding_cosine", "rel_error"]
        print(rounding[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
