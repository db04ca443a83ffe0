"""``python -m memcomp.diagnose [--out DIR] [--repeats N]``: the default diagnostics sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from memcomp.diagnose.sweep import Problem, default_sweep, run_sweep
from memcomp.fsutil import atomic_write_text
from memcomp.report.hypergrad import plot_error_frontier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memcomp.diagnose", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/diagnose"))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = pd.DataFrame(run_sweep(default_sweep(Problem()), repeats=args.repeats))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "hypergrad-error.csv", rows.to_csv(index=False))
    fig = plot_error_frontier(rows)
    fig.savefig(args.out / "hypergrad-error.png", dpi=120)
    cols = ["learner", "varies", "rel_error", "cosine", "sec_per_meta_grad", "peak_mem_mb"]
    print(rows[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"wrote {args.out / 'hypergrad-error.csv'} and {args.out / 'hypergrad-error.png'}")


if __name__ == "__main__":
    main()
