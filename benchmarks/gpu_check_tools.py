"""Helpers of ``benchmarks/gpu_check.sh`` (no torch, no memcomp import: it also runs where they
fail to import).

    python benchmarks/gpu_check_tools.py paper-suite OUT.yaml [--quick]
    python benchmarks/gpu_check_tools.py summary WORK_DIR

``paper-suite`` writes ``suites/paper-memory.yaml`` cut to what issue 17's H200 session ran: K in
{5, 20}, meta-batch 4, tasks one after another (36 cells); ``--quick`` shrinks it further (one
small shape, K in {1, 2}, one task) for a CPU. ``summary`` prints the short table of a check's
work folder: each step's status and time, then the figures of each step that ran.
"""

from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def paper_suite(out: Path, quick: bool) -> None:
    suite = yaml.safe_load((ROOT / "suites" / "paper-memory.yaml").read_text())
    ks = [1, 2] if quick else [5, 20]
    for learner in suite["learners"]:
        learner["inner_steps"] = ks
        learner["execution"] = "sequential"
    suite["train"]["meta_batch"] = 1 if quick else 4
    if quick:
        suite["train"]["iterations"] = 1
        part = suite["parts"][0]
        part["datasets"] = [{"name": "synthetic", "image_size": 16, "channels": 3,
                             "train_classes": 8, "val_classes": 5, "test_classes": 5,
                             "images_per_class": 12}]  # fmt: skip
        part["backbones"] = [{"name": "conv4", "hidden": 8}]
        suite["parts"] = [part]
    suite["description"] = f"paper-memory cut by gpu_check.sh: K in {ks}, meta-batch " + str(
        suite["train"]["meta_batch"]
    )
    out.write_text(yaml.safe_dump(suite, sort_keys=False))


# ------------------------------------------------------------------------------------ summary


def _rows(pattern: str, delimiter: str = ",") -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in sorted(glob.glob(pattern)):
        with open(name, newline="") as fh:
            rows += list(csv.DictReader(fh, delimiter=delimiter))
    return rows


def _num(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _mb(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def steps(work: Path) -> list[str]:
    out = [f"{'step':<14} {'status':<10} {'seconds':>7} {'limit':>6}"]
    for r in _rows(str(work / "steps.tsv"), "\t"):
        out.append(f"{r['step']:<14} {r['status']:<10} {r['seconds']:>7} {r['limit']:>6}")
    return out


def junit_counts(path: Path) -> str:
    if not path.exists():
        return "no JUnit file"
    suites = ET.parse(path).getroot().iter("testsuite")
    n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        for k in n:
            n[k] += int(s.get(k, 0))
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    return (f"{passed} passed, {n['failures']} failed, {n['errors']} errors, "
            f"{n['skipped']} skipped")  # fmt: skip


def calibration(work: Path) -> list[str]:
    rows = _rows(str(work / "calibration" / "calibration.csv"))
    if not rows:
        return ["calibration: no table"]
    ratios = [x for r in rows if not math.isnan(x := _num(r["ratio_cpu"]))]
    if not ratios:
        return [f"calibration: {len(rows)} rows, CPU estimates only (no CUDA)"]
    return [f"calibration: CPU estimate / CUDA peak {min(ratios):.3f} .. {max(ratios):.3f} "
            f"over {len(ratios)} rows"]  # fmt: skip


def results_table(work: Path, suite: str) -> list[str]:
    rows = _rows(str(work / "results" / suite / "*" / "runs.csv"))
    if not rows:
        return [f"{suite}: no runs.csv"]
    ok = sum(r["status"] == "ok" for r in rows)
    out = [f"{suite}: {ok}/{len(rows)} cells ok; peak MB above baseline (+ baseline), source"]
    for r in rows:
        variant = r.get("learner.features", "") or ""
        size = r.get("dataset.image_size", "")
        peak, base = _num(r.get("peak_mem_mb")), _num(r.get("mem_baseline_mb"))
        out.append(
            f"  {r['learner']:<15} {variant:<9} {size:>3}px K={r.get('learner.inner_steps', ''):<3}"
            f" {r['status']:<8} {_mb(peak):>8} (+{_mb(base)}) {r.get('mem_source', '')}"
            + (f"  {r.get('error', '')[:90]}" if r["status"] != "ok" else "")
        )
    return out


def speed_table(work: Path) -> list[str]:
    out = []
    for name in sorted(glob.glob(str(work / "speed*.csv")) + glob.glob(str(work / "peers*.csv"))):
        rows = _rows(name)
        ops = any(r.get("ops_per_iter") for r in rows)
        head = "ms/iter, x floor, seq/batched"
        head += ", ATen ops (x floor), compiled kernels, CUDA kernels/launches" if ops else ""
        out.append(f"{Path(name).name}: {head}, status")
        for r in rows:
            check = f" peer_check {r['peer_check']}" if r.get("peer_check") else ""
            err = ""
            if r.get("peer_err_run"):
                e64, run = _num(r["peer_err_float64"]), _num(r["peer_err_run"])
                err = f" (err64 {e64:.1e}, run dtype {run:.2e})"
            if r.get("compile_err"):
                err += (f" (compile_err {_num(r['compile_err']):.1e}, noise "
                        f"{_num(r.get('compile_noise')):.1e})")  # fmt: skip
            if r.get("status") in ("refused", "skipped", "error"):
                err += f" {r.get('error', '')[:70]}"
            speed = _num(r.get("batched_speedup"))
            speed_s = "" if math.isnan(speed) else f"{speed:.1f}"
            counts = ""
            if ops and r.get("ops_per_iter"):
                cuda = f" {r['cuda_kernels']}/{r['cuda_launches']}" if r.get("cuda_kernels") else ""
                counts = (f" {r['ops_per_iter']:>5} ({_num(r['ops_vs_floor']):.1f}x) "
                          f"{r['compiled_kernels']:>4}{cuda}")  # fmt: skip
            out.append(
                f"  {r['shape']:<12} {r['learner']:<13} {r['mode']:<10} "
                + (f"{r['compile']:<8} " if r.get("compile") else "")
                + f"{1000 * _num(r['seconds']):9.1f} {_num(r['vs_floor']):6.2f} "
                f"{speed_s:>5}{counts} {r['status']}{check}{err}"
            )
    return out or ["speed: no tables"]


def summary(work: Path) -> str:
    env = work / "env.txt"
    lines = [env.read_text().strip() if env.exists() else "(no env.txt)", "", "== steps =="]
    lines += steps(work)
    lines += ["", f"gpu tests: {junit_counts(work / 'gpu-tests.xml')}"]
    lines += calibration(work)
    lines += [f"budgets ({_source(work / 'budgets.xml')}): {junit_counts(work / 'budgets.xml')}"]
    lines += [""] + results_table(work, "paper-memory")
    lines += [""] + results_table(work, "oom-check")
    lines += [""] + speed_table(work)
    return "\n".join(lines)


def _source(path: Path) -> str:
    if not path.exists():
        return "?"
    prop = ET.parse(path).getroot().find("testsuite/properties/property")
    return "source ?" if prop is None else f"source {prop.get('value')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("paper-suite")
    p.add_argument("out", type=Path)
    p.add_argument("--quick", action="store_true")
    s = sub.add_parser("summary")
    s.add_argument("work", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "paper-suite":
        paper_suite(args.out, args.quick)
    else:
        text = summary(args.work)
        (args.work / "summary.txt").write_text(text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
