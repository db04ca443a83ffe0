"""Memory and time per precision: for cells that differ only in ``precision`` (float32 | tf32 |
bf16 | float64), their peak memory and seconds per meta-iteration side by side, with bf16 and
float64 relative to float32.

Cells are matched on everything but the precision: the setting group, the learner variant
(learner parameters and training knobs that vary, computed with the precision and ``dtype``
columns left out) and the inner steps K; seeds are averaged. Rows written before the precision
columns take their precision from ``dtype``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memcomp.report.normalize import MISSING, Table, _display_rank, normalize_runs

ORDER = ("float32", "tf32", "bf16", "float64")
RELATIVE = ("bf16", "float64")  # shown relative to float32


def precision_data(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per setting, variant (without precision) and precision: mean peak memory, mean
    s/iter, the status and how many cells; only comparisons with two or more precisions."""
    cols = ["setting", "variant", "K", "precision", "peak_mem_mb", "sec_per_iter", "status"]
    cols += ["mem_source", "n_runs"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    raw = runs.reset_index(drop=True)
    given = raw["precision"] if "precision" in raw.columns else [None] * len(raw)
    dtypes = raw["dtype"] if "dtype" in raw.columns else [None] * len(raw)
    precision = [
        str(p) if isinstance(p, str) else str(d) if isinstance(d, str) else "float32"
        for p, d in zip(given, dtypes, strict=True)
    ]
    blind = normalize_runs(raw.drop(columns=["precision", "dtype"], errors="ignore"))
    blind["precision"] = precision
    for c in ("peak_mem_mb", "sec_per_iter"):
        blind[c] = pd.to_numeric(blind[c], errors="coerce")
    rows = []
    for (setting, variant), sub in blind.groupby(["setting", "variant"], sort=False):
        if sub["precision"].nunique() < 2:
            continue
        for p, cells in sub.groupby("precision", sort=False):
            ok = cells[cells["status"] == "ok"]
            srcs = sorted(set(ok["mem_source"]) - {"none", "nan"})
            rows.append(
                {
                    "setting": setting, "variant": variant, "K": cells["K"].iloc[0],
                    "precision": p, "peak_mem_mb": ok["peak_mem_mb"].mean(),
                    "sec_per_iter": ok["sec_per_iter"].mean(),
                    "status": "ok" if len(ok) else str(cells["status"].iloc[0]),
                    "mem_source": "+".join(srcs) or "none", "n_runs": len(cells),
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _mb(v: float) -> str:
    return MISSING if pd.isna(v) else f"{v:.1f}"


def _sec(v: float) -> str:
    return MISSING if pd.isna(v) else f"{v:.3g}"


def precision_table(runs: pd.DataFrame) -> Table:
    """Peak memory (MB above baseline) and s/iter per precision for each learner variant run in
    more than one precision; ``bf16 / float32`` and ``float64 / float32`` ratios of both."""
    tidy = precision_data(runs)
    title = "Peak memory and time per precision"
    if tidy.empty:
        return Table("precision", title, pd.DataFrame(), tidy)
    present = [p for p in ORDER if p in set(tidy["precision"])]
    present += sorted(set(tidy["precision"]) - set(ORDER))
    lines = []
    for (setting, variant), sub in tidy.groupby(["setting", "variant"], sort=False):
        by = {r["precision"]: r for _, r in sub.iterrows()}
        line: dict[str, str] = {"setting": setting, "variant": variant}
        for p in present:
            r = by.get(p)
            if r is None:
                line[f"{p} MB"] = line[f"{p} s/iter"] = MISSING
            elif r["status"] != "ok":
                line[f"{p} MB"], line[f"{p} s/iter"] = str(r["status"]).upper(), ""
            else:
                line[f"{p} MB"], line[f"{p} s/iter"] = (
                    _mb(r["peak_mem_mb"]),
                    _sec(r["sec_per_iter"]),
                )
        base = by.get("float32")
        for p in RELATIVE:
            if p not in present or p == "float32":
                continue
            r = by.get(p)
            for col, key in (("MB", "peak_mem_mb"), ("s/iter", "sec_per_iter")):
                ratio = np.nan
                if r is not None and base is not None and r["status"] == base["status"] == "ok":
                    ratio = r[key] / base[key] if base[key] else np.nan
                line[f"{p} / float32 {col}"] = MISSING if pd.isna(ratio) else f"{ratio:.2f}"
        lines.append(line)
    data = pd.DataFrame(lines)
    data["_l"] = [_display_rank(v) for v in data["variant"]]
    data = data.sort_values(["setting", "_l", "variant"], kind="stable").drop(columns="_l")
    sources = "+".join(sorted(set("+".join(tidy["mem_source"]).split("+")) - {"none"})) or "none"
    note = (
        "cells that differ only in precision, mean over seeds. MB: peak_mem_mb, the peak above "
        f"the baseline (weights, optimiser state, data), memory source {sources}; s/iter: "
        "median meta-iteration. bf16 = autocast bfloat16 with float32 master weights; SKIPPED: "
        "the precision cannot run on that device (tf32 is CUDA only)"
    )
    return Table("precision", title, data.reset_index(drop=True), tidy, note)


__all__ = ["precision_data", "precision_table"]
