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
# ``DataFrame.attrs`` key: the columns of a table :func:`normalize_runs` returned.
NORMALIZED = "memcomp.normalized"


@dataclass
class Table:
    """A report table: numbers in ``tidy`` (CSV), the formatted view in ``data`` (md/tex/rich);
    ``filters``: the columns report.html offers as drop-down filters."""

    name: str
    title: str
    data: pd.DataFrame
    tidy: pd.DataFrame
    note: str = ""
    filters: tuple[str, ...] = ()


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
    """Values as plain Python strings, missing ones as ``fill`` (pandas-version independent).

    Each distinct value is formatted once (a 200,000-row table has a few hundred), so this is
    linear in the rows with a small constant; an object column of mixed types (where ``1``,
    ``1.0`` and ``True`` would share a hash) is formatted value by value.
    """
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        return pd.Series(
            [fill if pd.isna(v) else _fmt_value(v) for v in s], index=s.index, dtype=object
        )
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    table = np.array([_fmt_value(v) for v in uniques] + [fill], dtype=object)
    return pd.Series(table[codes], index=s.index, dtype=object)  # code -1 (missing) -> fill


def _row_groups(parts: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """(group number of each row, position of each group's first row) over string columns."""
    n = len(parts[0]) if parts else 0
    if not parts or n == 0:
        return np.zeros(n, dtype=np.intp), np.zeros(min(n, 1), dtype=np.intp)
    codes = np.column_stack([pd.factorize(p)[0] for p in parts])
    _, first, gid = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return gid.reshape(-1), first


def _key_strings(runs: pd.DataFrame, cols: list[str]) -> pd.Series:
    parts = [_text(runs[c]) for c in cols]
    gid, first = _row_groups(parts)
    keys = np.array(["|".join(p.iat[i] for p in parts) for i in first], dtype=object)
    return pd.Series(keys[gid], index=runs.index, dtype=object)


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

    A table this function returned, or a row subset of one with the same columns, is returned
    as a copy without being normalised again (a report's sections share one normalisation);
    a table with a column added or dropped since is normalised anew.
    """
    if runs.attrs.get(NORMALIZED) == tuple(runs.columns):
        return runs.copy()
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

    runs["variant"] = _variant_labels(runs, varying, skip_k=False)
    runs["variant_nok"] = _variant_labels(runs, varying, skip_k=True)
    runs.attrs[NORMALIZED] = tuple(runs.columns)
    return runs


def _variant_labels(runs: pd.DataFrame, varying: dict[str, list[str]], skip_k: bool) -> pd.Series:
    """ "learner k=v ..." per row over the parameters in ``varying[learner]``; built once per
    distinct combination, not once per row."""
    cols = sorted({c for cs in varying.values() for c in cs if not (skip_k and c == K_COLUMN)})
    texts = {c: _text(runs[c]) for c in cols}
    parts = [runs["learner"]] + [texts[c] for c in cols]
    gid, first = _row_groups(parts)
    labels = []
    for i in first:
        learner = runs["learner"].iat[i]
        words = [learner]
        for c in varying[learner]:
            if skip_k and c == K_COLUMN:
                continue
            name = param_name(c) if c.startswith("learner.") else c
            words.append(f"{SHORT.get(name, name)}={texts[c].iat[i]}")
        labels.append(" ".join(words))
    return pd.Series(np.array(labels, dtype=object)[gid], index=runs.index, dtype=str)


def _display_rank(variant: str) -> int:
    """Learner rank of a table row label ("mrml K=5", "paper Algorithm 1")."""
    return _learner_rank(variant[6:] if variant.startswith("paper ") else variant.split()[0])


def _variant_order(runs: pd.DataFrame, col: str = "variant") -> list[str]:
    first = runs.drop_duplicates(col)  # each variant's first row names its learner
    learner = dict(zip(first[col], first["learner"], strict=True))

    def key(v: str) -> tuple:
        return (_learner_rank(learner[v]), learner[v], _natural(v))

    return sorted(learner, key=key)


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
