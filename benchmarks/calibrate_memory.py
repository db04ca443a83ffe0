"""Calibrate memcomp's CPU memory estimate against the CUDA caching allocator.

Runs the same meta-iterations (random tasks of the paper's shapes: memory depends on shapes, not
pixel values) measured three ways and reports the ratio estimate / CUDA per learner and K:

* ``cuda``: ``torch.cuda.max_memory_allocated`` on the GPU (the reference);
* ``est_cpu``: the storage-tracking estimate on the CPU (what CI without a GPU runs);
* ``est_gpu``: the same tracker following the GPU run's tensors (separates "CPU and CUDA kernels
  save different tensors" from "the tracker misses allocator-level work" such as cuDNN workspaces).

Usage::

    python benchmarks/calibrate_memory.py --out results/calibration          # on a GPU machine
    python benchmarks/calibrate_memory.py --out /tmp/cal --quick             # CPU only, quick

Writes ``calibration.csv`` and ``calibration.md`` (a table for the README) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memcomp.backbones import BACKBONES, build_backbone
from memcomp.engine.train import meta_step
from memcomp.learners import build_learner
from memcomp.measure.memory import MemoryMeter, MemoryResult
from memcomp.types import Task


@dataclass(frozen=True)
class Shape:
    name: str
    image_size: int
    backbone: str
    params: dict[str, Any]
    ks: tuple[int, ...]
    channels: int = 3


SHAPES = [
    Shape("84px-conv4-32", 84, "conv4", {"hidden": 32}, (5, 10, 20)),
    Shape("32px-conv4-64", 32, "conv4", {"hidden": 64}, (5, 10, 20)),
    Shape("84px-resnet12", 84, "resnet12", {}, (1, 5)),
]
LEARNERS: list[tuple[str, dict[str, Any]]] = [
    ("maml", {}),
    ("anil", {"features": "per-step"}),
    ("anil", {"features": "once"}),
    ("itd-bio", {}),
    ("mrml", {}),
    ("imaml", {}),
]
QUICK_LEARNERS = [("maml", {}), ("anil", {"features": "once"}), ("mrml", {})]


@dataclass
class Row:
    shape: str
    learner: str
    k: int
    values: dict[str, MemoryResult | str] = field(default_factory=dict)  # source -> result/error
    seconds: dict[str, float] = field(default_factory=dict)


def learner_label(name: str, params: dict[str, Any]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}({extra})" if extra else name


def random_tasks(
    shape: Shape, ways: int, shots: int, queries: int, count: int, seed: int
) -> list[Task]:
    gen = torch.Generator().manual_seed(seed)
    c, s = shape.channels, shape.image_size
    tasks = []
    for _ in range(count):
        xs = torch.randn(ways * shots, c, s, s, generator=gen)
        xq = torch.randn(ways * queries, c, s, s, generator=gen)
        tasks.append(
            Task(
                xs,
                torch.arange(ways).repeat_interleave(shots),
                xq,
                torch.arange(ways).repeat_interleave(queries),
            )
        )
    return tasks


def measure(
    shape: Shape,
    learner: tuple[str, dict[str, Any]],
    k: int,
    device: str,
    source: str,
    args: argparse.Namespace,
) -> MemoryResult:
    """One warm-up meta-iteration, then ``args.iterations`` measured ones."""
    torch.manual_seed(args.seed)
    dev = torch.device(device)
    in_shape = (shape.channels, shape.image_size, shape.image_size)
    backbone = build_backbone(shape.backbone, dict(shape.params), in_shape)
    name, params = learner
    model = build_learner(name, {**params, "inner_steps": k}, backbone, args.ways).to(dev)
    opt = torch.optim.Adam(model.meta_parameters(), lr=1e-3)
    tasks = [
        t.to(dev)
        for t in random_tasks(
            shape, args.ways, args.shots, args.queries, args.meta_batch, args.seed
        )
    ]
    meter = MemoryMeter(dev, source)
    meta_step(model, opt, tasks)  # warm-up: optimiser state, allocator, lazy init
    for _ in range(args.iterations):
        with meter.measure():
            meta_step(model, opt, tasks)
    result = meter.result()
    del model, opt, tasks, meter
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return result


def run(args: argparse.Namespace) -> list[Row]:
    has_cuda = torch.cuda.is_available() and not args.quick
    if not has_cuda:
        print("no CUDA GPU (or --quick): CPU estimates only, no ratios", file=sys.stderr)
    runs = [("est_cpu", "cpu", "cpu-estimate")]
    if has_cuda:
        runs = [("cuda", "cuda", "cuda"), *runs, ("est_gpu", "cuda", "cpu-estimate")]
    default = [s.name for s in SHAPES if not (args.quick and s.backbone == "resnet12")]
    shapes = [s for s in SHAPES if s.backbone in BACKBONES and s.name in (args.shapes or default)]
    learners = QUICK_LEARNERS if args.quick else LEARNERS
    if args.learners:
        learners = [
            (n, p)
            for n, p in LEARNERS
            if learner_label(n, p) in args.learners or n in args.learners
        ]
    rows = []
    for shape in shapes:
        ks = tuple(args.ks) if args.ks else ((1, 5) if args.quick else shape.ks)
        for learner in learners:
            for k in ks:
                row = Row(shape.name, learner_label(*learner), k)
                for col, device, source in runs:
                    t0 = time.perf_counter()
                    try:
                        row.values[col] = measure(shape, learner, k, device, source, args)
                    except Exception as e:  # noqa: BLE001 - report and go on
                        row.values[col] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
                        if device == "cuda":
                            torch.cuda.empty_cache()
                    row.seconds[col] = time.perf_counter() - t0
                rows.append(row)
                print(summary_line(row), flush=True)
    return rows


def result(row: Row, col: str) -> MemoryResult | None:
    v = row.values.get(col)
    return v if isinstance(v, MemoryResult) else None


def peak(row: Row, col: str) -> float | None:
    r = result(row, col)
    return None if r is None else r.peak_mb


def ratio(row: Row, col: str) -> float | None:
    a, b = peak(row, col), peak(row, "cuda")
    return a / b if a is not None and b else None


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def summary_line(row: Row) -> str:
    parts = [f"{row.shape:14s} {row.learner:22s} K={row.k:<3d}"]
    for col in ("cuda", "est_cpu", "est_gpu"):
        if col in row.values:
            v = row.values[col]
            parts.append(
                f"{col}={fmt(peak(row, col))}" if isinstance(v, MemoryResult) else f"{col}=ERR({v})"
            )
    if ratio(row, "est_cpu") is not None:
        parts.append(f"ratio={ratio(row, 'est_cpu'):.3f}")
    return "  ".join(parts)


def write_outputs(rows: list[Row], out: Path, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    meta = {
        "date": dt.date.today().isoformat(),
        "gpu": card,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "setting": f"{args.ways}-way {args.shots}-shot {args.queries} queries",
        "meta_batch": args.meta_batch,
        "iterations": args.iterations,
    }
    with open(out / "calibration.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["shape", "learner", "k", "cuda_mb", "est_cpu_mb", "est_gpu_mb", "ratio_cpu",
             "ratio_gpu", "cuda_reserved_mb", "cuda_baseline_mb", "est_cpu_baseline_mb",
             "phases_cuda", "phases_est_cpu", "errors", "seconds", *meta]
        )  # fmt: skip
        for r in rows:
            cu, ec = result(r, "cuda"), result(r, "est_cpu")
            errors = {c: v for c, v in r.values.items() if isinstance(v, str)}
            w.writerow(
                [r.shape, r.learner, r.k, fmt(peak(r, "cuda"), ".3f"),
                 fmt(peak(r, "est_cpu"), ".3f"), fmt(peak(r, "est_gpu"), ".3f"),
                 fmt(ratio(r, "est_cpu"), ".4f"), fmt(ratio(r, "est_gpu"), ".4f"),
                 fmt(cu.reserved_mb if cu else None, ".3f"),
                 fmt(cu.baseline_mb if cu else None, ".3f"),
                 fmt(ec.baseline_mb if ec else None, ".3f"),
                 json.dumps(cu.phases if cu else {}), json.dumps(ec.phases if ec else {}),
                 json.dumps(errors), json.dumps({c: round(s, 2) for c, s in r.seconds.items()}),
                 *meta.values()]
            )  # fmt: skip
    lines = [
        f"Memory estimate calibration ({meta['date']}, GPU: {card or 'none'}, torch "
        f"{meta['torch']}, {meta['setting']}, meta-batch {args.meta_batch}); peak MB above "
        "the meta-iteration's baseline.",
        "",
        "| shape | learner | K | CUDA MB | CPU estimate MB | estimate / CUDA |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.shape} | {r.learner} | {r.k} | {fmt(peak(r, 'cuda'))} | "
            f"{fmt(peak(r, 'est_cpu'))} | {fmt(ratio(r, 'est_cpu'), '.3f')} |"
        )
    ratios = [x for r in rows if (x := ratio(r, "est_cpu")) is not None]
    if ratios:
        worst = max(ratios, key=lambda x: abs(x - 1))
        lines += ["", f"ratio range {min(ratios):.3f} .. {max(ratios):.3f} (worst {worst:.3f})"]
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'calibration.csv'} and {out / 'calibration.md'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for calibration.csv/.md")
    p.add_argument(
        "--quick", action="store_true", help="CPU estimates only: Conv4 shapes, K=1,5, 3 learners"
    )
    p.add_argument("--shapes", nargs="*", help=f"subset of {[s.name for s in SHAPES]}")
    p.add_argument("--learners", nargs="*", help="subset, e.g. maml 'anil(features=once)'")
    p.add_argument("--ks", nargs="*", type=int, help="inner steps K (default: per shape)")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--meta-batch", type=int, default=1, help="tasks per meta-iteration")
    p.add_argument("--iterations", type=int, default=2, help="measured meta-iterations")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.backends.cudnn.benchmark = False
    rows = run(args)
    write_outputs(rows, args.out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
