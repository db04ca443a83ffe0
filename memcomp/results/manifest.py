"""A results folder's manifest.json (what produced it) and creating the folder atomically."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import memcomp
from memcomp.config.settings import planned_flags
from memcomp.errors import InputError
from memcomp.results.schema import SCHEMA_VERSION
from memcomp.results.store import ResultsDir

if TYPE_CHECKING:
    from memcomp.config.cells import Cell


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves to ``root`` or somewhere below it."""
    return path.resolve().is_relative_to(root.resolve())


def new_results_dir(root: Path, suite_name: str) -> ResultsDir:
    """``root/<suite>/<UTC timestamp>``; never reuses an existing folder, never leaves ``root``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = root / suite_name / stamp
    if not inside(base, root) or Path(suite_name).name != suite_name:
        raise InputError(f"suite name {suite_name!r} would write outside {root}")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return ResultsDir(path)


def create_results_dir(results: ResultsDir, info: dict[str, Any]) -> ResultsDir:
    """Create ``results`` with its manifest in one rename: it never exists without a manifest.

    The temporary folder has a unique name, and when another run took the folder name in the
    meantime (two runs started in the same second) the next free ``<stamp>-N`` is used; the
    folder actually created is returned.
    """
    parent = results.path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{results.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        ResultsDir(tmp).write_manifest(info)
        target, n = results.path, 1
        while True:
            try:
                os.rename(tmp, target)  # fails when target exists as a non-empty folder
                return ResultsDir(target)
            except OSError:
                if not target.exists():
                    raise
                n += 1
                target = results.path.with_name(f"{results.path.name}-{n}")
    except BaseException:
        for f in tmp.glob("*"):
            f.unlink(missing_ok=True)
        if tmp.exists():
            tmp.rmdir()
        raise


def manifest(
    suite_name: str,
    suite_text: str,
    runtime: Mapping[str, Any],
    cells: Sequence[Cell],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Self-description of a results folder: what produced it, where, with what.

    ``runtime`` holds ``device``, ``device_name``, ``torch_version`` and ``cuda_version``.
    ``precision`` maps each cell id to the precision flags its process sets (TF32 in cuBLAS and
    cuDNN, the float32 matmul precision, cudnn benchmark/deterministic, the autocast dtype); the
    flags found in force are in each runs.csv row. ``compile`` maps each cell id to its
    ``train.compile`` (none | graphs | inductor; also the row's ``compile`` column).
    """
    return {
        "suite": suite_name,
        "suite_text": suite_text,
        "results_schema": SCHEMA_VERSION,
        "memcomp_version": memcomp.__version__,
        "torch_version": runtime.get("torch_version"),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": runtime.get("device"),
        "device_name": runtime.get("device_name"),
        "cuda_version": runtime.get("cuda_version"),
        "git_commit": git_commit(),
        "started_at": now(),
        "options": dict(options),
        "cells": {c.id: c.config() for c in cells},
        "precision": {c.id: planned_flags(c.train) for c in cells},
        "compile": {c.id: c.train.compile for c in cells},
    }
