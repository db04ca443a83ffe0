"""``memcomp compare BASE NEW``: did a change make accuracy, memory or time worse?

Cells are matched by cell id, and cells left over by their configuration (learner, dataset,
setting, backbone, seed, training knobs and component parameters). For each matched pair four
metrics are compared, each with its own noise rule (README, "memcomp compare"):

- accuracy: the per-episode test accuracies (episodes.csv; both runs use the same fixed test
  episodes, so the test is a paired t-test when the counts match, Welch's t-test otherwise);
  beyond noise when p < alpha. Without episodes: the 95% CIs, |change| > sqrt(ci_b^2 + ci_n^2).
- peak memory: beyond noise when it moves by more than ``memory`` (relative) AND ``memory_mb``.
- s/iter: Welch's t-test on the per-interval seconds per iteration (from curves.csv:
  train_seconds between evaluations / iterations between them, the warm-up interval dropped)
  with p < alpha AND |relative change| > ``time``; with fewer than 2 samples a side, the
  relative rule alone.
- time to accuracy: both runs against the BASE run's target (fraction x its Acc_max); beyond noise
  when it moves by more than ``time`` (relative) AND by more than one evaluation interval.

A change that is worse and beyond noise is a regression; a base cell that was ok and now failed is
one too. Printing, JUnit XML and the page: :mod:`memcomp.report.compare_output`,
:mod:`memcomp.report.compare_html`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memcomp.report.normalize import SETTING_KEY, TRAIN_KNOBS, normalize_runs
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW, time_to_accuracy
from memcomp.results import ResultsDir, param_columns

__all__ = ["Change", "Comparison", "Thresholds", "compare_results"]

Row = Mapping[str, Any]  # one runs row: a dict or a pandas Series (``.get`` and ``[]``)

METRICS = ("status", "accuracy", "peak_mem_mb", "sec_per_iter", "time_to_accuracy")
REGRESSION, IMPROVEMENT, WITHIN, NA = "regression", "improvement", "within noise", "n/a"


@dataclass(frozen=True)
class Thresholds:
    """Noise rules: significance level and the smallest changes that count."""

    alpha: float = 0.05
    memory: float = 0.05
    memory_mb: float = 0.5
    time: float = 0.10
    fraction: float = FRACTION


@dataclass
class Change:
    """One metric of one matched cell: both values, the relative change and the verdict."""

    cell: str
    metric: str
    base: float | str | None
    new: float | str | None
    change: float
    verdict: str
    test: str
    p_value: float = math.nan
    cell_id: str = ""


COLUMNS = ["cell", "metric", "base", "new", "change", "verdict", "test", "p_value", "cell_id"]


@dataclass
class Comparison:
    """Everything ``compare_results`` found: matched pairs, the changes (``table``: one row per
    cell and metric, in matched order), cells on one side only."""

    base: Path
    new: Path
    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    matched: list[tuple[str, str, str]] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def changes(self) -> list[Change]:
        """Every change as a :class:`Change` (made on each call: a big comparison has
        millions; use ``table`` or :meth:`rows` for a part)."""
        return self.rows(self.table)

    @property
    def regressions(self) -> list[Change]:
        return self.rows(self.table[self.table["verdict"] == REGRESSION])

    @property
    def n_regressions(self) -> int:
        return int((self.table["verdict"] == REGRESSION).sum())

    @staticmethod
    def rows(table: pd.DataFrame) -> list[Change]:
        """The rows of (a part of) ``table`` as :class:`Change` objects."""
        return [Change(*r) for r in table[COLUMNS].itertuples(index=False, name=None)]

    def frame(self) -> pd.DataFrame:
        """The changes as a table (one row per cell and metric)."""
        return self.table[COLUMNS].reset_index(drop=True)


# ----------------------------------------------------------------------------- matching

_NOT_CONFIG = {"cell_id", "suite", "label", "status", "error", "traceback"}
_NOT_CONFIG |= {"resumed_from_iteration"}


def config_columns(runs: pd.DataFrame) -> list[str]:
    """Columns that say what a cell computes (not what it measured or where it ran): the
    setting, seed, training knobs and every prefixed component parameter (schema 2)."""
    cols = ["learner", *SETTING_KEY, "seed", *TRAIN_KNOBS, *param_columns(runs.columns)]
    return [c for c in dict.fromkeys(cols) if c in runs.columns and c not in _NOT_CONFIG]


def _config_keys(runs: pd.DataFrame, cols: list[str]) -> pd.Series:
    def text(v: Any) -> str:
        if pd.isna(v):
            return ""
        return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)

    return pd.Series(
        ["|".join(text(v) for v in row) for row in runs[cols].itertuples(index=False)],
        index=runs.index,
    )


def match_cells(base: pd.DataFrame, new: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(base id, new id, how) for each pair: by id first, then by a unique configuration."""
    new_ids = set(new["cell_id"])
    pairs = [(c, c, "id") for c in base["cell_id"] if c in new_ids]
    b = base[~base["cell_id"].isin(new["cell_id"])]
    n = new[~new["cell_id"].isin(base["cell_id"])]
    if len(b) and len(n):
        cols = [c for c in config_columns(base) if c in config_columns(new)]
        kb, kn = _config_keys(b, cols), _config_keys(n, cols)
        unique_b, unique_n = kb[~kb.duplicated(keep=False)], kn[~kn.duplicated(keep=False)]
        by_key = dict(zip(unique_n, n.loc[unique_n.index, "cell_id"], strict=True))
        for i, key in unique_b.items():
            if key in by_key:
                pairs.append((b.at[i, "cell_id"], by_key[key], "configuration"))
    return pairs


# ----------------------------------------------------------------------------- metrics


def _rel(base: float, new: float) -> float:
    return new / base - 1.0 if base else math.nan


def _verdict(beyond: bool, worse: bool) -> str:
    if not beyond:
        return WITHIN
    return REGRESSION if worse else IMPROVEMENT


def _p_value(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    if kind == "paired":
        d = b - a
        if np.allclose(d, d[0]):  # no spread: identical (p = 1) or a constant shift (p = 0)
            return 1.0 if abs(d[0]) < 1e-12 else 0.0
        return float(stats.ttest_rel(b, a).pvalue)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(b, a, equal_var=False).pvalue)


def accuracy_change(
    cell: str, b_eps: np.ndarray, n_eps: np.ndarray, b: Row, n: Row, th: Thresholds
) -> Change:
    """Test accuracy (%): a t-test over per-episode accuracies, else the CI rule."""
    if len(b_eps) > 1 and len(n_eps) > 1:
        kind = "paired" if len(b_eps) == len(n_eps) else "welch"
        p = _p_value(kind, b_eps, n_eps)
        mb, mn = float(b_eps.mean()), float(n_eps.mean())
        how = (
            f"paired t-test over {len(b_eps)} test episodes"
            if kind == "paired"
            else f"Welch t-test over {len(b_eps)}/{len(n_eps)} test episodes"
        )
        test = f"{how}, p={p:.3g} (alpha {th.alpha:g})"
        return Change(cell, "accuracy", mb, mn, mn - mb, _verdict(p < th.alpha, mn < mb), test, p)
    mb, mn = float(b.get("test_acc", math.nan)), float(n.get("test_acc", math.nan))
    cb, cn = float(b.get("test_ci95", math.nan)), float(n.get("test_ci95", math.nan))
    if any(math.isnan(v) for v in (mb, mn, cb, cn)):
        return Change(cell, "accuracy", mb, mn, mn - mb, NA, "no test accuracy on one side")
    se = math.hypot(cb, cn)
    test = f"no episodes: 95% CIs, |change| > sqrt(ci_base^2 + ci_new^2) = {se:.3g}"
    return Change(cell, "accuracy", mb, mn, mn - mb, _verdict(abs(mn - mb) > se, mn < mb), test)


def memory_change(cell: str, b: Row, n: Row, th: Thresholds) -> Change:
    """Peak memory (MB): a relative and an absolute threshold (the measurement is repeatable)."""
    mb, mn = float(b.get("peak_mem_mb", math.nan)), float(n.get("peak_mem_mb", math.nan))
    if math.isnan(mb) or math.isnan(mn):
        return Change(cell, "peak_mem_mb", mb, mn, math.nan, NA, "not measured on one side")
    rel = _rel(mb, mn)
    beyond = abs(mn - mb) > th.memory_mb and (math.isnan(rel) or abs(rel) > th.memory)
    test = f"rule: |change| > {th.memory:.0%} and > {th.memory_mb:g} MB"
    if str(b.get("mem_source")) != str(n.get("mem_source")):
        test += f" (mem_source {b.get('mem_source')} vs {n.get('mem_source')})"
    return Change(cell, "peak_mem_mb", mb, mn, rel, _verdict(beyond, mn > mb), test)


def interval_samples(curve: pd.DataFrame) -> np.ndarray:
    """Seconds per iteration between consecutive evaluations; the first (warm-up) interval is
    dropped when at least two others remain."""
    if curve.empty:
        return np.array([])
    c = curve.sort_values("iteration")
    it = np.r_[0.0, c["iteration"].to_numpy(float)]
    t = np.r_[0.0, c["train_seconds"].to_numpy(float)]
    d_it, d_t = np.diff(it), np.diff(t)
    s = d_t[d_it > 0] / d_it[d_it > 0]
    s = s[np.isfinite(s)]
    return s[1:] if len(s) >= 3 else s


def time_change(
    cell: str, b: Row, n: Row, b_curve: pd.DataFrame, n_curve: pd.DataFrame,
    th: Thresholds,
) -> Change:  # fmt: skip
    """Seconds per outer iteration: Welch's t-test on per-interval samples and the time rule."""
    mb, mn = float(b.get("sec_per_iter", math.nan)), float(n.get("sec_per_iter", math.nan))
    if math.isnan(mb) or math.isnan(mn):
        return Change(cell, "sec_per_iter", mb, mn, math.nan, NA, "not timed on one side")
    rel = _rel(mb, mn)
    big = not math.isnan(rel) and abs(rel) > th.time
    sb, sn = interval_samples(b_curve), interval_samples(n_curve)
    if len(sb) >= 2 and len(sn) >= 2:
        p = _p_value("welch", sb, sn)
        test = (
            f"Welch t-test over {len(sb)}/{len(sn)} per-interval samples, p={p:.3g}, "
            f"and |change| > {th.time:.0%}"
        )
        return Change(
            cell, "sec_per_iter", mb, mn, rel, _verdict(big and p < th.alpha, mn > mb), test, p
        )
    test = f"rule (fewer than 2 per-interval samples): |change| > {th.time:.0%}"
    return Change(cell, "sec_per_iter", mb, mn, rel, _verdict(big, mn > mb), test)


def tta_change(
    cell: str, target: float, b_curve: pd.DataFrame, n_curve: pd.DataFrame, th: Thresholds
) -> Change:
    """Time to ``target`` (the BASE run's fraction x Acc_max) of both curves."""
    if b_curve.empty or n_curve.empty or math.isnan(target):
        return Change(cell, "time_to_accuracy", None, None, math.nan, NA, "no curve on one side")
    b_c, n_c = b_curve.sort_values("iteration"), n_curve.sort_values("iteration")
    tb = time_to_accuracy(b_c["train_seconds"], b_c["val_acc"], target, WINDOW, PATIENCE)
    tn = time_to_accuracy(n_c["train_seconds"], n_c["val_acc"], target, WINDOW, PATIENCE)
    step = float(np.median(np.diff(np.r_[0.0, b_c["train_seconds"].to_numpy(float)])))
    test = (
        f"target {target:.2f}% (base: {th.fraction:g} x Acc_max); rule: |change| > "
        f"{th.time:.0%} and > one evaluation interval ({step:.3g} s)"
    )
    if tb is None and tn is None:
        return Change(cell, "time_to_accuracy", None, None, math.nan, NA, "not reached by either")
    if tb is None or tn is None:
        worse = tn is None
        shown = ("not reached", tn) if tb is None else (tb, "not reached")
        verdict = REGRESSION if worse else IMPROVEMENT
        return Change(cell, "time_to_accuracy", *shown, math.nan, verdict, test)
    rel = _rel(tb, tn)
    beyond = abs(tn - tb) > step and (math.isnan(rel) or abs(rel) > th.time)
    return Change(cell, "time_to_accuracy", tb, tn, rel, _verdict(beyond, tn > tb), test)


# ----------------------------------------------------------------------------- comparing


def _targets(runs: pd.DataFrame, curves: pd.DataFrame, fraction: float) -> pd.Series:
    """cell id -> fraction x the best validation accuracy of its comparison group."""
    group = runs.set_index("cell_id")["group"]  # runs: normalised
    if curves.empty:
        return pd.Series(math.nan, index=group.index)
    best = curves.assign(group=curves["cell_id"].map(group)).groupby("group")["val_acc"].max()
    return group.map(best).astype(float) * fraction


def _cell_name(row: Row) -> str:
    """A short readable name: variant | setting | seed (what ``normalize_runs`` labels)."""
    seed = row.get("seed")
    seed = f"{seed:g}" if isinstance(seed, (float, np.floating)) else seed
    return f"{row.get('variant')} | {row.get('setting')} | seed {seed}"


def _pair_changes(
    cell: str, b: Row, n: Row, eps: tuple[np.ndarray, np.ndarray],
    curves: tuple[pd.DataFrame, pd.DataFrame], target: float, th: Thresholds,
) -> list[Change]:  # fmt: skip
    """The changes of one matched cell; a cell that failed on either side has only its status."""
    sb, sn = str(b["status"]), str(n["status"])
    if sb != "ok" or sn != "ok":
        verdict = REGRESSION if sb == "ok" else (IMPROVEMENT if sn == "ok" else WITHIN)
        test = "status (a failed cell has no measurements to compare)"
        return [Change(cell, "status", sb, sn, math.nan, verdict, test)]
    return [
        accuracy_change(cell, *eps, b, n, th),
        memory_change(cell, b, n, th),
        time_change(cell, b, n, *curves, th),
        tta_change(cell, target, *curves, th),
    ]


# the runs columns the rules read (a row per matched cell; all columns as dicts cost 1 GB at 200k)
_ROW_COLUMNS = ["cell_id", "status", "test_acc", "test_ci95", "peak_mem_mb", "mem_source"]
_ROW_COLUMNS += ["sec_per_iter", "variant", "setting", "seed"]


def _rows_by_id(runs: pd.DataFrame, ids: set[str]) -> dict[str, dict[str, Any]]:
    """cell id -> its runs row (the columns the rules read) as a dict, for ``ids`` only."""
    cols = [c for c in _ROW_COLUMNS if c in runs.columns]
    sub = runs.loc[runs["cell_id"].astype(str).isin(ids), cols]
    return {str(r["cell_id"]): r for r in sub.to_dict("records")}


def _groups_by_id(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """cell id -> its rows, grouped once."""
    if df.empty or "cell_id" not in df.columns:
        return {}
    return {str(k): g for k, g in df.groupby("cell_id", sort=False)}


def _episodes_by_id(eps: pd.DataFrame) -> dict[str, np.ndarray]:
    """cell id -> its per-episode accuracies in episode order, grouped once."""
    if eps.empty or not {"cell_id", "episode", "acc"} <= set(eps.columns):
        return {}
    s = eps.sort_values(["cell_id", "episode"], kind="stable")
    return {str(k): g.to_numpy(float) for k, g in s.groupby("cell_id", sort=False)["acc"]}


def _positions(runs: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """Row positions of ``ids`` in ``runs`` (every id is there: they were matched in it)."""
    return pd.Index(runs["cell_id"].astype(str)).get_indexer(ids)


def _aligned(runs: pd.DataFrame, at: np.ndarray, col: str, kind: str = "float") -> np.ndarray:
    """Column ``col`` of ``runs`` at row positions ``at``; NaN / "None" where missing."""
    if col not in runs.columns:
        return np.full(len(at), np.nan) if kind == "float" else np.full(len(at), "None", object)
    s = runs[col].iloc[at]
    if kind == "float":
        return pd.to_numeric(s, errors="coerce").to_numpy(float)
    return np.array([str(v) for v in s.to_numpy(object)], dtype=object)


def _names(runs: pd.DataFrame, at: np.ndarray) -> list[str]:
    """:func:`_cell_name` of the rows at positions ``at``."""
    cols = [runs[c].iloc[at].to_numpy(object) if c in runs.columns else [None] * len(at)
            for c in ("variant", "setting", "seed")]  # fmt: skip
    return [
        _cell_name({"variant": v, "setting": s, "seed": d}) for v, s, d in zip(*cols, strict=True)
    ]


def _frame(cells: list[str], ids: list[str], metric: str, base: Any, new: Any, change: Any,
           verdict: Any, test: Any, p_value: Any = math.nan) -> pd.DataFrame:  # fmt: skip
    n = len(cells)
    cols = dict(zip(COLUMNS, (cells, [metric] * n, base, new, change, verdict, test, p_value, ids),
                    strict=True))  # fmt: skip
    return pd.DataFrame({k: (v if np.ndim(v) else [v] * n) for k, v in cols.items()})


def _verdicts(beyond: np.ndarray, worse: np.ndarray) -> np.ndarray:
    return np.where(~beyond, WITHIN, np.where(worse, REGRESSION, IMPROVEMENT)).astype(object)


def _fast_accuracy(names, ids, mb, mn, cb, cn) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """:func:`accuracy_change` of cells without episodes on both sides (the CI rule)."""
    na = np.isnan(mb) | np.isnan(mn) | np.isnan(cb) | np.isnan(cn)
    se = np.hypot(cb, cn)
    verdict = _verdicts(np.abs(mn - mb) > se, mn < mb)
    verdict[na] = NA
    rule = "no episodes: 95% CIs, |change| > sqrt(ci_base^2 + ci_new^2) = "
    test = np.array(["no test accuracy on one side" if bad else f"{rule}{v:.3g}"
                     for bad, v in zip(na, se, strict=True)], dtype=object)  # fmt: skip
    return _frame(names, ids, "accuracy", mb, mn, mn - mb, verdict, test)


def _fast_memory(names, ids, mb, mn, src_b, src_n, th: Thresholds) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """:func:`memory_change`, for every cell at once."""
    na = np.isnan(mb) | np.isnan(mn)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(mb != 0, mn / mb - 1.0, np.nan)
    beyond = (np.abs(mn - mb) > th.memory_mb) & (np.isnan(rel) | (np.abs(rel) > th.memory))
    verdict = _verdicts(beyond, mn > mb)
    verdict[na] = NA
    rel[na] = np.nan
    rule = f"rule: |change| > {th.memory:.0%} and > {th.memory_mb:g} MB"
    test = np.full(len(ids), rule, dtype=object)
    test[na] = "not measured on one side"
    differ = ~na & (src_b != src_n)
    test[differ] = [f"{rule} (mem_source {b} vs {n})"
                    for b, n in zip(src_b[differ], src_n[differ], strict=True)]  # fmt: skip
    return _frame(names, ids, "peak_mem_mb", mb, mn, rel, verdict, test)


def _fast_time(names, ids, mb, mn, th: Thresholds) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """:func:`time_change` of cells without curves on both sides (the relative rule)."""
    na = np.isnan(mb) | np.isnan(mn)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(mb != 0, mn / mb - 1.0, np.nan)
    big = ~np.isnan(rel) & (np.abs(rel) > th.time)
    verdict = _verdicts(big, mn > mb)
    verdict[na] = NA
    rel[na] = np.nan
    test = np.full(len(ids), f"rule (fewer than 2 per-interval samples): |change| > {th.time:.0%}",
                   dtype=object)  # fmt: skip
    test[na] = "not timed on one side"
    return _frame(names, ids, "sec_per_iter", mb, mn, rel, verdict, test)


def _status_rows(names, ids, sb, sn) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    verdict = np.where(sb == "ok", REGRESSION, np.where(sn == "ok", IMPROVEMENT, WITHIN))
    test = "status (a failed cell has no measurements to compare)"
    return _frame(names, ids, "status", sb, sn, math.nan, verdict.astype(object), test)


def _needed(runs: pd.DataFrame) -> pd.DataFrame:
    """The columns of normalised ``runs`` that matching and the rules read (a 200,000-row
    table keeps about a tenth of its memory)."""
    cols = ["cell_id", *config_columns(runs), *_ROW_COLUMNS, "group"]
    return runs[[c for c in dict.fromkeys(cols) if c in runs.columns]]


def compare_results(base: Path, new: Path, thresholds: Thresholds | None = None) -> Comparison:
    """Compare two results folders cell by cell (see the module docstring for the rules).

    Cells with per-episode accuracies or curves on both sides go through the per-cell rules
    (t-tests, time to accuracy); the rules of the others are applied to all of them at once
    with numpy, with the same verdicts (tests/test_compare_scale.py checks it)."""
    th = thresholds or Thresholds()
    rb, rn = ResultsDir(Path(base)), ResultsDir(Path(new))
    runs_b = _needed(normalize_runs(rb.runs()))  # one side in memory whole at a time
    runs_n = _needed(normalize_runs(rn.runs()))
    cur_b, cur_n, eps_b, eps_n = rb.curves(), rn.curves(), rb.episodes(), rn.episodes()
    out = Comparison(Path(base), Path(new), thresholds=th)
    out.matched = match_cells(runs_b, runs_n)
    out.only_base = sorted(set(runs_b["cell_id"]) - {b for b, _, _ in out.matched})
    out.only_new = sorted(set(runs_n["cell_id"]) - {n for _, n, _ in out.matched})
    if not out.matched:
        return out
    bids = [str(b) for b, _, _ in out.matched]
    nids = [str(n) for _, n, _ in out.matched]
    pb, pn = _positions(runs_b, bids), _positions(runs_n, nids)
    names = _names(runs_b, pb)
    sb, sn = _aligned(runs_b, pb, "status", "str"), _aligned(runs_n, pn, "status", "str")
    ok = (sb == "ok") & (sn == "ok")
    ep_b, ep_n = _episodes_by_id(eps_b), _episodes_by_id(eps_n)
    cu_b, cu_n = _groups_by_id(cur_b), _groups_by_id(cur_n)
    has_eps = np.array([len(ep_b.get(b, ())) > 1 and len(ep_n.get(n, ())) > 1
                        for b, n in zip(bids, nids, strict=True)])  # fmt: skip
    has_cur = np.array([b in cu_b and n in cu_n for b, n in zip(bids, nids, strict=True)])
    slow = ok & (has_eps | has_cur)  # cells with samples: the per-cell rules
    fast = ok & ~slow

    def at(mask: np.ndarray, values: Any) -> Any:
        return [v for v, m in zip(values, mask, strict=True) if m]

    parts = []
    order = np.arange(len(bids))
    st = ~ok
    parts.append((order[st], 0, _status_rows(at(st, names), at(st, bids), sb[st], sn[st])))
    if fast.any():
        f_names, f_ids = at(fast, names), at(fast, bids)
        cols = {c: (_aligned(runs_b, pb[fast], c), _aligned(runs_n, pn[fast], c))
                for c in ("test_acc", "test_ci95", "peak_mem_mb", "sec_per_iter")}  # fmt: skip
        acc, ci = cols["test_acc"], cols["test_ci95"]
        parts.append((order[fast], 0, _fast_accuracy(f_names, f_ids, *acc, *ci)))
        src = (_aligned(runs_b, pb[fast], "mem_source", "str"),
               _aligned(runs_n, pn[fast], "mem_source", "str"))  # fmt: skip
        parts.append((order[fast], 1, _fast_memory(f_names, f_ids, *cols["peak_mem_mb"], *src, th)))
        parts.append((order[fast], 2, _fast_time(f_names, f_ids, *cols["sec_per_iter"], th)))
        no = "no curve on one side"
        parts.append((order[fast], 3, _frame(f_names, f_ids, "time_to_accuracy", None, None,
                                             math.nan, NA, no)))  # fmt: skip
    if slow.any():
        s_b, s_n = at(slow, bids), at(slow, nids)
        targets = _targets(runs_b, cur_b, th.fraction)
        rows_b, rows_n = _rows_by_id(runs_b, set(s_b)), _rows_by_id(runs_n, set(s_n))
        no_eps, no_cur = np.array([]), cur_b.iloc[0:0]
        changes: list[Change] = []
        for bid, nid, cell in zip(s_b, s_n, at(slow, names), strict=True):
            b, n = rows_b[bid], rows_n[nid]
            eps = (ep_b.get(bid, no_eps), ep_n.get(nid, no_eps))
            curves = (cu_b.get(bid, no_cur), cu_n.get(nid, no_cur))
            target = float(targets.get(bid, math.nan))
            for change in _pair_changes(cell, b, n, eps, curves, target, th):
                change.cell_id = bid
                changes.append(change)
        table = pd.DataFrame(  # object columns: a value that is None stays None
            {k: pd.Series([getattr(c, k) for c in changes], dtype=object) for k in COLUMNS}
        )
        parts.append((np.repeat(order[slow], 4), np.tile(np.arange(4), slow.sum()), table))
    frames, keys = [], []
    for cells, metric, frame in parts:
        if len(frame):
            frames.append(frame)
            keys.append(
                np.c_[np.broadcast_to(cells, len(frame)), np.broadcast_to(metric, len(frame))]
            )
    table = pd.concat(frames, ignore_index=True)
    key = np.concatenate(keys)
    table = table.iloc[np.lexsort((key[:, 1], key[:, 0]))].reset_index(drop=True)
    out.table = table.astype({"base": object, "new": object})
    return out


def compare_results_per_cell(
    base: Path, new: Path, thresholds: Thresholds | None = None
) -> list[Change]:
    """The changes by the per-cell rules alone, for every matched cell (the reference the
    vectorised :func:`compare_results` is tested against; slow on big folders)."""
    th = thresholds or Thresholds()
    rb, rn = ResultsDir(Path(base)), ResultsDir(Path(new))
    runs_b, runs_n = normalize_runs(rb.runs()), normalize_runs(rn.runs())
    cur_b, cur_n, eps_b, eps_n = rb.curves(), rn.curves(), rb.episodes(), rn.episodes()
    targets = _targets(runs_b, cur_b, th.fraction)
    rows_b = _rows_by_id(runs_b, set(runs_b["cell_id"].astype(str)))
    rows_n = _rows_by_id(runs_n, set(runs_n["cell_id"].astype(str)))
    ep_b, ep_n = _episodes_by_id(eps_b), _episodes_by_id(eps_n)
    cu_b, cu_n = _groups_by_id(cur_b), _groups_by_id(cur_n)
    no_eps, no_cur = np.array([]), cur_b.iloc[0:0]
    out = []
    for bid, nid, _how in match_cells(runs_b, runs_n):
        b, n = rows_b[str(bid)], rows_n[str(nid)]
        eps = (ep_b.get(bid, no_eps), ep_n.get(nid, no_eps))
        curves = (cu_b.get(bid, no_cur), cu_n.get(nid, no_cur))
        target = float(targets.get(bid, math.nan))
        for change in _pair_changes(_cell_name(b), b, n, eps, curves, target, th):
            change.cell_id = bid
            out.append(change)
    return out
