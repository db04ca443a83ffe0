"""Results on disk: ``results/<suite>/<timestamp>/`` with runs.csv, curves.csv, episodes.csv and
manifest.json. Every write is atomic (temporary file, then rename), so a killed run leaves valid
files behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.fsutil import atomic_write_text

# Columns every runs.csv row has (learner parameters are added as their own columns).
RUN_COLUMNS = [
    "cell_id", "suite", "label", "status", "error",
    "dataset", "ways", "shots", "queries", "image_size", "backbone", "hidden", "learner",
    "seed", "test_acc", "test_ci95", "test_std", "test_episodes", "test_protocol",
    "best_val_acc", "final_val_acc", "peak_mem_mb", "mem_baseline_mb", "mem_reserved_mb",
    "mem_source", "sec_per_iter", "train_seconds", "iterations", "diverged_at", "cg_residual",
    "meta_batch", "outer_lr", "optimizer", "dtype", "bn_mode", "device", "device_name",
    "torch_version", "memcomp_version", "dataset_checksum", "protocol", "finished_at",
]  # fmt: skip
CURVE_COLUMNS = ["cell_id", "iteration", "train_seconds", "val_acc", "val_ci95"]
EPISODE_COLUMNS = ["cell_id", "episode", "acc"]


def atomic_write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def read_csv(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a results table; a missing file is an empty table with ``columns``."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns or [])
    return pd.read_csv(path)


class ResultsDir:
    """One run's results folder; rows are appended cell by cell with atomic rewrites."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def runs_csv(self) -> Path:
        return self.path / "runs.csv"

    @property
    def curves_csv(self) -> Path:
        return self.path / "curves.csv"

    @property
    def episodes_csv(self) -> Path:
        return self.path / "episodes.csv"

    @property
    def manifest_json(self) -> Path:
        return self.path / "manifest.json"

    def runs(self) -> pd.DataFrame:
        return read_csv(self.runs_csv, RUN_COLUMNS)

    def curves(self) -> pd.DataFrame:
        return read_csv(self.curves_csv, CURVE_COLUMNS)

    def episodes(self) -> pd.DataFrame:
        return read_csv(self.episodes_csv, EPISODE_COLUMNS)

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_json.read_text()) if self.manifest_json.exists() else {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_json, json.dumps(manifest, indent=2, default=str))

    def append(
        self, run: dict[str, Any], curve: list[dict[str, Any]], episodes: list[float]
    ) -> None:
        """Add one cell's results, replacing any earlier rows of the same cell id."""
        cid = run["cell_id"]
        self.path.mkdir(parents=True, exist_ok=True)
        # Episodes and curves first: runs.csv is the commit point read by resume.
        ep = self.episodes()
        ep = ep[ep["cell_id"] != cid] if len(ep) else ep
        new_ep = pd.DataFrame(
            {"cell_id": cid, "episode": range(len(episodes)), "acc": episodes},
            columns=EPISODE_COLUMNS,
        )
        atomic_write_csv(self.episodes_csv, _concat(ep, new_ep))
        cu = self.curves()
        cu = cu[cu["cell_id"] != cid] if len(cu) else cu
        atomic_write_csv(self.curves_csv, _concat(cu, pd.DataFrame(curve, columns=CURVE_COLUMNS)))
        runs = self.runs()
        runs = runs[runs["cell_id"] != cid] if len(runs) else runs
        row = pd.DataFrame([run])
        cols = RUN_COLUMNS + [c for c in row.columns if c not in RUN_COLUMNS]
        cols += [c for c in runs.columns if c not in cols]
        atomic_write_csv(self.runs_csv, _concat(runs, row).reindex(columns=cols))


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (a, b) if len(f)]
    if not frames:
        return b
    return pd.concat(frames, ignore_index=True)
