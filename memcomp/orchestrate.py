"""Run a list of cells into one results folder, cell by cell (suite -> cells -> runner -> store)."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import memcomp
from memcomp.cells import Cell
from memcomp.runner import CellOutcome, Progress, device_name, run_cell
from memcomp.store import ResultsDir


def git_commit() -> str | None:
    """The memcomp checkout's commit, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(memcomp.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_results_dir(root: Path, suite_name: str) -> ResultsDir:
    """``root/<suite>/<UTC timestamp>``; never reuses an existing folder."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = root / suite_name / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return ResultsDir(path)


def manifest(
    suite_name: str, suite_text: str, device: torch.device, cells: Sequence[Cell]
) -> dict[str, Any]:
    """Self-description of a results folder: what produced it, where, with what."""
    return {
        "suite": suite_name,
        "suite_text": suite_text,
        "memcomp_version": memcomp.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device.type,
        "device_name": device_name(device),
        "cuda_version": torch.version.cuda,
        "git_commit": git_commit(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cells": {c.id: c.config() for c in cells},
    }


def run_cells(
    cells: Sequence[Cell],
    results: ResultsDir,
    device: torch.device,
    progress: Progress | None = None,
    on_done: Any = None,
) -> list[CellOutcome]:
    """Run ``cells`` in order; each finished cell is written before the next starts."""
    outcomes = []
    for cell in cells:
        outcome = run_cell(cell, device, progress)
        results.append(outcome.row, outcome.curve, outcome.episodes)
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes
