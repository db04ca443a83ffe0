"""Runs tables made comparable: schema-2 columns, setting groups, learner variants, orderings.

:func:`normalize_runs` maps a schema-1 table onto schema 2 and adds ``group``, ``setting``,
``variant`` and ``K``; learner, dataset and backbone parameters come from the schema's prefixed
columns (:mod:`memcomp.results.schema`), never from guessing by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from memcomp.report import paper_reference as paper
from memcomp.results.schema import (
    RUN_COLUMNS,
    param_columns,
    param_name,
    schema_version,
    upgrade_runs,
)

# Run columns (besides learner parameters) that, when they differ, make a different variant.
# Learner, dataset and backbone parameters are the schema's prefixed columns (never guessed).
TRAIN_KNOBS = [
    "iterations",
    "meta_batch",
    "outer_lr",
    "optimizer",
    "dtype",
    "precision",
    "cudnn_benchmark",
    "cudnn_deterministic",
    "bn_mode",
    "test_protocol",
]
SHORT = {"inner_steps": "K", "cg_steps": "N"}
K_COLUMN = "learner.inner_steps"
IMAGE_SIZE, HIDDEN = "dataset.image_size", "backbone.hidden"  # shown as "32px", "conv4-64"
LEARNER_ORDER = ["maml", "fomaml", "anil", "itd-bio", "imaml", "mrml"]
SETTING_KEY = ["dataset", "ways", "shots", "queries", "backbone"]
MISSING = "–"


@dataclass
class Table:
    """A report table: numbers in ``tidy`` (CSV), the formatted view in ``data`` (md/tex/rich)."""

    name: str
    title: str
    data: pd.DataFrame
    tidy: pd.DataFrame
    note: str = ""


# ----------------------------------------------------------------------------- normalising


def _fmt_value(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "?"
        return str(int(v)) if float(v).is_integer() else f"{v:g}"
    return str(v)


def group_key(runs: pd.DataFrame) -> list[str]:
    """Columns that make a dataset/setting group: the setting, every dataset and backbone
    parameter."""
    return (
        SETTING_KEY
        + param_columns(runs.columns, "dataset")
        + param_columns(runs.columns, "backbone")
    )


def _learner_rank(name: str) -> int:
    key = paper.learner_key(name)
    return LEARNER_ORDER.index(key) if key in LEARNER_ORDER else len(LEARNER_ORDER)


def _text(s: pd.Series, fill: str = "?") -> pd.Series:
    """Values as plain Python strings, missing ones as ``fill`` (pandas-version independent)."""
    return pd.Series(
        [fill if pd.isna(v) else _fmt_value(v) for v in s], index=s.index, dtype=object
    )


def _key_strings(runs: pd.DataFrame, cols: list[str]) -> pd.Series:
    parts = [_text(runs[c]) for c in cols]
    return pd.Series(
        ["|".join(p) for p in zip(*parts, strict=True)], index=runs.index, dtype=object
    )


def _group_labels(runs: pd.DataFrame) -> pd.Series:
    """A readable label per group key; extra parts only where needed to tell groups apart."""
    keys = _key_strings(runs, group_key(runs))
    base = runs["dataset"] + " " + _text(runs["ways"]) + "w" + _text(runs["shots"]) + "s"
    labels = base.copy()
    for b in base.unique():
        rows = base == b
        if keys[rows].nunique() <= 1:
            continue
        sub = runs[rows]
        extra = pd.Series("", index=sub.index, dtype=object)
        if _text(sub["queries"]).nunique() > 1:
            extra += " q" + _text(sub["queries"])
        if _text(sub[IMAGE_SIZE]).nunique() > 1:
            extra += " " + _text(sub[IMAGE_SIZE]) + "px"
        if _key_strings(sub, ["backbone", HIDDEN]).nunique() > 1:
            extra += " " + sub["backbone"] + "-" + _text(sub[HIDDEN])
        for c in param_columns(sub.columns, "dataset") + param_columns(sub.columns, "backbone"):
            if c not in (IMAGE_SIZE, HIDDEN) and _text(sub[c]).nunique() > 1:
                extra += f" {param_name(c)}=" + _text(sub[c])
        labels[rows] = b + extra
    return labels


def normalize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill columns older results lack and add ``group``, ``setting``, ``variant``, ``K``.

    ``variant`` is the learner name plus every learner parameter (or training knob) that takes
    more than one value for that learner within one dataset/setting; ``variant_nok`` leaves out
    the inner steps K (the memory plot's x axis).
    """
    runs = upgrade_runs(runs, schema_version({}, runs)).copy()
    if "precision" not in runs.columns and "dtype" in runs.columns:
        runs["precision"] = runs["dtype"]  # written before the key: its dtype was its precision
    for c in ("cudnn_benchmark", "cudnn_deterministic"):
        if c not in runs.columns:
            runs[c] = False  # before memcomp set them: torch's defaults
    for c in [*RUN_COLUMNS, IMAGE_SIZE, HIDDEN]:
        if c not in runs.columns:
            runs[c] = np.nan
    runs["status"] = _text(runs["status"], "ok").str.lower()
    for c in ("learner", "dataset", "backbone"):
        runs[c] = _text(runs[c])
    runs["mem_source"] = _text(runs["mem_source"], "none")
    runs["K"] = runs[K_COLUMN] if K_COLUMN in runs.columns else np.nan
    if runs.empty:
        for c in ("group", "setting", "variant", "variant_nok"):
            runs[c] = pd.Series(dtype=str)
        return runs
    runs["group"] = _key_strings(runs, group_key(runs))
    runs["setting"] = _group_labels(runs)
    knobs = param_columns(runs.columns, "learner") + [c for c in TRAIN_KNOBS if c in runs.columns]
    varying: dict[str, list[str]] = {}
    for learner, sub in runs.groupby("learner"):
        varying[learner] = [
            c for c in knobs if (sub.groupby("group")[c].nunique(dropna=True) > 1).any()
        ]
        if "precision" in varying[learner] and "dtype" in varying[learner]:
            varying[learner].remove("dtype")  # the precision names the weights' dtype too

    def label(row: pd.Series, skip_k: bool) -> str:
        parts = [row["learner"]]
        for c in varying[row["learner"]]:
            if skip_k and c == K_COLUMN:
                continue
            name = param_name(c) if c.startswith("learner.") else c
            parts.append(f"{SHORT.get(name, name)}={_fmt_value(row[c])}")
        return " ".join(parts)

    runs["variant"] = runs.apply(label, axis=1, skip_k=False)
    runs["variant_nok"] = runs.apply(label, axis=1, skip_k=True)
    return runs


def _display_rank(variant: str) -> int:
    """Learner rank of a table row label ("mrml K=5", "paper Algorithm 1")."""
    return _learner_rank(variant[6:] if variant.startswith("paper ") else variant.split()[0])


def _variant_order(runs: pd.DataFrame, col: str = "variant") -> list[str]:
    def key(v: str) -> tuple:
        row = runs[runs[col] == v].iloc[0]
        return (_learner_rank(row["learner"]), row["learner"], _natural(v))

    return sorted(runs[col].unique(), key=key)


def _natural(s: str) -> tuple:
    out: list[Any] = []
    for tok in s.replace("=", " ").split():
        try:
            out.append((0, float(tok), ""))
        except ValueError:
            out.append((1, 0.0, tok))
    return tuple(out)


def _setting_order(runs: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(runs.sort_values(["dataset", "ways", "shots"])["setting"]))


def _status_word(statuses: pd.Series) -> str:
    bad = statuses[statuses != "ok"]
    return (bad.mode().iloc[0] if len(bad) else "ok").upper()
