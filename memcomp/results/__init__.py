"""Results folders: the store (runs/curves/episodes/manifest), resume, and THE results schema.

Importing this package does not import torch (the report reads results without it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from memcomp.results.schema import (
    CURVE_COLUMNS,
    EPISODE_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    param_columns,
)
from memcomp.results.store import CorruptResultsError, ResultsDir


def read_results(path: Path | str) -> pd.DataFrame:
    """runs.csv of a results folder in schema 2 (schema-1 folders are mapped)."""
    return ResultsDir(Path(path)).runs()


__all__ = [
    "CURVE_COLUMNS", "EPISODE_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "CorruptResultsError",
    "ResultsDir", "param_columns", "read_results",
]  # fmt: skip
