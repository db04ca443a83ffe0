"""Results on disk: ``results/<suite>/<timestamp>/`` with runs.csv, curves.csv, episodes.csv and
manifest.json. Every write is atomic (temporary file, then rename), so a killed run leaves valid
files behind. Reading checks the files: a corrupt one is a :class:`CorruptResultsError` (exit 2)
naming the file and what is wrong; schema-1 runs tables are mapped onto schema 2.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.errors import InputError
from memcomp.fsutil import atomic_write_text
from memcomp.results.schema import (
    CONFIG_COLUMNS,
    CURVE_COLUMNS,
    EPISODE_COLUMNS,
    MEASURE_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    column_order,
    column_type,
    schema_version,
    upgrade_runs,
)

# read as text whatever they look like: an all-digit cell id (1 in 280) is no number
TEXT_COLUMNS = {c: str for c, t in (CONFIG_COLUMNS | MEASURE_COLUMNS).items() if t == "str"}


class CorruptResultsError(InputError):
    """A results file that cannot be read (exit 2); the message names the file."""


def atomic_write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def read_csv(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a results table; a missing file is an empty table with ``columns``.

    A table pandas cannot parse (a row with extra fields, an unterminated quote, bytes that are not
    UTF-8) raises :class:`CorruptResultsError` naming ``path`` and the problem.
    """
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns or [])
    try:
        text = path.read_text(encoding="utf-8")
        df = pd.read_csv(io.StringIO(text), dtype=TEXT_COLUMNS)
    except (UnicodeDecodeError, pd.errors.ParserError, csv.Error, ValueError) as e:
        why = " ".join(str(e).split())
        raise CorruptResultsError(
            f"{path}: not a readable CSV table ({why}); restore it from a backup or "
            "remove the broken rows (a missing row is re-run by --resume)"
        ) from None
    if columns and "cell_id" in columns and "cell_id" not in df.columns:
        raise CorruptResultsError(f"{path}: no cell_id column; not a memcomp results table")
    return _numbers_checked(path, df)


def _numbers_checked(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column the schema types as a number checked (and made numeric): a value
    that is not a number (a shifted row, a hand edit) is a :class:`CorruptResultsError`."""
    for col in df.columns:
        if column_type(str(col)) not in ("int", "float") or pd.api.types.is_numeric_dtype(df[col]):
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise CorruptResultsError(
                f"{path}: column {col!r} holds {str(df[col].iloc[row])[:40]!r} on line {row + 2}, "
                "not a number; fix or remove that row (a missing row is re-run by --resume)"
            )
        df[col] = values
    return df


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

    def raw_runs(self) -> pd.DataFrame:
        """runs.csv as written (schema of the folder)."""
        return read_csv(self.runs_csv, RUN_COLUMNS)

    def runs(self, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
        """runs.csv in schema 2 (a schema-1 folder is mapped)."""
        raw = self.raw_runs()
        ids = raw["cell_id"].fillna("").astype(str) if len(raw) else raw.get("cell_id")
        if ids is not None and ids.duplicated().any():
            dup = ids[ids.duplicated()].iloc[0]
            lines = [i + 2 for i in range(len(ids)) if ids.iloc[i] == dup]
            raise CorruptResultsError(
                f"{self.runs_csv}: cell {dup} has {len(lines)} rows (lines "
                f"{', '.join(map(str, lines))}); memcomp writes one per cell: keep one of them"
            )
        if manifest is None:
            manifest = self.manifest_or_empty()
        return upgrade_runs(raw, schema_version(manifest, raw))

    def curves(self) -> pd.DataFrame:
        return read_csv(self.curves_csv, CURVE_COLUMNS)

    def episodes(self) -> pd.DataFrame:
        return read_csv(self.episodes_csv, EPISODE_COLUMNS)

    def manifest(self) -> dict[str, Any]:
        """manifest.json ({} when missing); :class:`CorruptResultsError` when unreadable."""
        if not self.manifest_json.exists():
            return {}
        try:
            data = json.loads(self.manifest_json.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptResultsError(f"{self.manifest_json}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise CorruptResultsError(f"{self.manifest_json}: not a JSON object")
        return data

    def manifest_or_empty(self) -> dict[str, Any]:
        """The manifest, or {} when it is missing or unreadable."""
        try:
            return self.manifest()
        except CorruptResultsError:
            return {}

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
        runs = self.raw_runs()
        runs = runs[runs["cell_id"] != cid] if len(runs) else runs
        row = pd.DataFrame([run])
        cols = column_order([*row.columns, *runs.columns])
        atomic_write_csv(self.runs_csv, _concat(runs, row).reindex(columns=cols))


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (a, b) if len(f)]
    if not frames:
        return b
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "CURVE_COLUMNS", "EPISODE_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "CorruptResultsError",
    "ResultsDir", "atomic_write_csv", "read_csv",
]  # fmt: skip
