"""THE results schema: which columns runs.csv has, in which groups, of which types.

Schema 2 (``"results_schema": 2`` in manifest.json):

- configuration columns (:data:`CONFIG_COLUMNS`): what the cell is and where it ran;
- measurement columns (:data:`MEASURE_COLUMNS`, plus one ``mem_<phase>_mb`` per memory phase);
- component parameters, one PREFIXED column each: ``learner.<param>``, ``dataset.<param>``,
  ``backbone.<param>`` (:data:`PARAM_PREFIXES`). A learner parameter named ``seed`` is
  ``learner.seed``: it can never overwrite a configuration column.

Schema 1 (folders written before the prefix; no ``results_schema`` in the manifest) had bare
parameter columns; :func:`upgrade_runs` maps them onto schema 2 so every reader sees one layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

SCHEMA_VERSION = 2
PARAM_PREFIXES = ("learner.", "dataset.", "backbone.")
KINDS = ("learner", "dataset", "backbone")

# column -> type ("str", "int", "float", "bool"); the type a reader may rely on (empty cells are
# NaN).
CONFIG_COLUMNS: dict[str, str] = {
    "cell_id": "str", "suite": "str", "label": "str", "status": "str", "error": "str",
    "dataset": "str", "ways": "int", "shots": "int", "queries": "int", "backbone": "str",
    "learner": "str", "seed": "int", "test_episodes": "int", "test_protocol": "str",
    "meta_batch": "int", "outer_lr": "float", "optimizer": "str", "dtype": "str",
    "iterations": "int", "bn_mode": "str", "device": "str", "device_name": "str",
    "torch_version": "str", "memcomp_version": "str", "cpu_threads": "int",
    "dataset_checksum": "str", "protocol": "str", "finished_at": "str",
    "dataset_params": "str", "backbone_params": "str", "exit_code": "int", "traceback": "str",
}  # fmt: skip
# The arithmetic a cell ran in (memcomp/measure/precision.py): its precision (float32 | tf32 |
# bf16 | float64; ``dtype`` is the weights' dtype) and the flags read back from torch in the cell
# process: TF32 in cuBLAS (torch.backends.cuda.matmul.allow_tf32) and cuDNN
# (torch.backends.cudnn.allow_tf32), torch.get_float32_matmul_precision(), cudnn.benchmark,
# cudnn.deterministic, and the autocast dtype found in force in the meta-steps (or "none").
PRECISION_COLUMNS: dict[str, str] = {
    "precision": "str", "matmul_tf32": "bool", "cudnn_tf32": "bool",
    "float32_matmul_precision": "str", "cudnn_benchmark": "bool", "cudnn_deterministic": "bool",
    "autocast_dtype": "str",
}  # fmt: skip
CONFIG_COLUMNS |= PRECISION_COLUMNS
MEASURE_COLUMNS: dict[str, str] = {
    "test_acc": "float", "test_ci95": "float", "test_std": "float", "best_val_acc": "float",
    "final_val_acc": "float", "peak_mem_mb": "float", "mem_baseline_mb": "float",
    "mem_reserved_mb": "float", "mem_source": "str", "sec_per_iter": "float",
    "train_seconds": "float", "diverged_at": "int", "cg_residual": "float",
    "lower_grad_norm": "float", "resumed_from_iteration": "int",
    # how the meta-batch ran (execution: auto chooses; memcomp/engine/choose.py)
    "execution_mode": "str", "task_chunk_used": "int", "chunk_reason": "str",
    "oom_retries": "int", "predicted_peak_mb": "float", "memory_budget_mb": "float",
}  # fmt: skip
PHASE_COLUMN = re.compile(r"^mem_[a-z0-9_]+_mb$")  # one per memory phase: mem_inner_mb, ...

# Order of the first columns of runs.csv (then parameters, then phases, then anything else).
RUN_COLUMNS = [
    "cell_id", "suite", "label", "status", "error", "dataset", "ways", "shots", "queries",
    "backbone", "learner", "seed", "test_acc", "test_ci95", "test_std", "test_episodes",
    "test_protocol", "best_val_acc", "final_val_acc", "peak_mem_mb", "mem_baseline_mb",
    "mem_reserved_mb", "mem_source", "predicted_peak_mb", "execution_mode", "task_chunk_used",
    "oom_retries", "chunk_reason", "memory_budget_mb", "sec_per_iter", "train_seconds",
    "iterations", "diverged_at", "cg_residual", "lower_grad_norm", "meta_batch", "outer_lr",
    "optimizer", "dtype", *PRECISION_COLUMNS, "bn_mode",
    "device", "device_name", "torch_version", "memcomp_version", "dataset_checksum", "protocol",
    "finished_at",
]  # fmt: skip
CURVE_COLUMNS = ["cell_id", "iteration", "train_seconds", "val_acc", "val_ci95"]
EPISODE_COLUMNS = ["cell_id", "episode", "acc"]
# Schema 1 wrote these two component parameters as bare columns beside the learner's.
_SCHEMA1_COMPONENT = {"image_size": "dataset.image_size", "hidden": "backbone.hidden"}


def param_column(kind: str, name: str) -> str:
    """``learner.inner_steps`` for ``("learner", "inner_steps")``."""
    return f"{kind}.{name}"


def component_columns(
    learner: Mapping[str, Any], dataset: Mapping[str, Any], backbone: Mapping[str, Any]
) -> dict[str, Any]:
    """The prefixed parameter columns of one row."""
    out: dict[str, Any] = {}
    for kind, params in zip(KINDS, (learner, dataset, backbone), strict=True):
        out.update({param_column(kind, k): v for k, v in params.items()})
    return out


def param_columns(columns: Iterable[str], kind: str | None = None) -> list[str]:
    """The parameter columns among ``columns`` (of one ``kind`` when given), in their order."""
    prefixes = PARAM_PREFIXES if kind is None else (f"{kind}.",)
    return [c for c in columns if c.startswith(prefixes)]


def param_name(column: str) -> str:
    """``inner_steps`` for ``learner.inner_steps``."""
    return column.split(".", 1)[1]


NUMERIC_TABLE_COLUMNS = {"iteration": "int", "episode": "int", "val_acc": "float", "acc": "float"}
NUMERIC_TABLE_COLUMNS |= {"val_ci95": "float", "train_seconds": "float"}  # curves, episodes


def column_type(column: str) -> str | None:
    """The type (``str``, ``int``, ``float``, ``bool``) a reader may rely on for a results column
    (None: not typed by the schema, e.g. a component parameter)."""
    if column in CONFIG_COLUMNS:
        return CONFIG_COLUMNS[column]
    if column in MEASURE_COLUMNS:
        return MEASURE_COLUMNS[column]
    if PHASE_COLUMN.match(column):
        return "float"
    return NUMERIC_TABLE_COLUMNS.get(column)


def is_known_column(column: str) -> bool:
    """A configuration, measurement or memory-phase column (not a parameter)."""
    return column in CONFIG_COLUMNS or column in MEASURE_COLUMNS or bool(PHASE_COLUMN.match(column))


def column_order(columns: Iterable[str]) -> list[str]:
    """``RUN_COLUMNS`` first, then parameters, then memory phases, then the rest."""
    cols = list(dict.fromkeys(columns))
    params = [c for c in cols if c.startswith(PARAM_PREFIXES)]
    phases = [c for c in cols if PHASE_COLUMN.match(c) and c not in RUN_COLUMNS]
    rest = [c for c in cols if c not in RUN_COLUMNS and c not in params and c not in phases]
    return RUN_COLUMNS + params + phases + rest


def schema_version(manifest: Mapping[str, Any], runs: pd.DataFrame) -> int:
    """The folder's schema: the manifest's ``results_schema``, else 2 when prefixed columns
    exist, else 1."""
    version = manifest.get("results_schema")
    if isinstance(version, int):
        return version
    return 2 if param_columns(runs.columns) else 1


def upgrade_runs(runs: pd.DataFrame, version: int) -> pd.DataFrame:
    """A schema-1 runs table mapped onto schema 2 (a schema-2 table is returned as it is).

    Schema 1: ``image_size`` -> ``dataset.image_size``, ``hidden`` -> ``backbone.hidden``, other
    dataset/backbone parameters from the ``dataset_params``/``backbone_params`` JSON columns, and
    every remaining column that is not a known configuration or measurement column ->
    ``learner.<column>``.
    """
    if version >= 2 or not len(runs.columns):
        return runs
    out = runs.copy()
    renames = {old: new for old, new in _SCHEMA1_COMPONENT.items() if old in out.columns}
    for c in out.columns:
        if c not in renames and not is_known_column(c):
            renames[c] = param_column("learner", c)
    out = out.rename(columns=renames)
    for kind in ("dataset", "backbone"):
        src = f"{kind}_params"
        if src not in out.columns:
            continue
        parsed = [_json_dict(v) for v in out[src]]
        for key in sorted({k for d in parsed for k in d}):
            col = param_column(kind, key)
            if col not in out.columns:
                out[col] = [d.get(key) for d in parsed]
    return out.reindex(columns=column_order(out.columns))


def _json_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
