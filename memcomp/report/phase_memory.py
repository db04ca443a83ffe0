"""Per-phase peak memory: the ``mem_<phase>_mb`` columns the runner records (inner loop,
hypergradient, outer update), one row per setting and learner variant, mean over ok seeds.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from memcomp.report.tables import Table, _variant_order, normalize_runs

__all__ = ["phase_columns", "phase_memory_table", "plot_phase_memory"]

_PHASE = re.compile(r"^mem_(.+)_mb$")
_NOT_PHASES = {"baseline", "reserved"}


def phase_columns(runs: pd.DataFrame) -> dict[str, str]:
    """Column -> phase name for every recorded phase with at least one value."""
    out = {}
    for c in runs.columns:
        m = _PHASE.match(str(c))
        if m and m.group(1) not in _NOT_PHASES and pd.to_numeric(runs[c], "coerce").notna().any():
            out[c] = m.group(1)
    return out


def phase_memory_table(runs: pd.DataFrame) -> Table:
    """Peak memory (MB) of each phase, rows = setting x variant (mean over seeds with a value)."""
    runs = normalize_runs(runs)
    cols = phase_columns(runs)
    title = "Peak memory per phase (MB)"
    if not cols or runs.empty:
        return Table("phase_memory", title, pd.DataFrame(), pd.DataFrame())
    num = runs[list(cols)].apply(pd.to_numeric, errors="coerce")
    tidy = (
        pd.concat([runs[["setting", "variant"]], num], axis=1)
        .groupby(["setting", "variant"], sort=False)
        .mean()
        .rename(columns=cols)
        .reset_index()
    )
    order = {v: i for i, v in enumerate(_variant_order(runs))}
    tidy = tidy.sort_values(
        ["setting", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s
    ).reset_index(drop=True)
    data = tidy.copy()
    for p in cols.values():
        data[p] = ["–" if pd.isna(v) else f"{v:.1f}" for v in data[p]]
    note = (
        "Peak memory above the region's baseline while each phase ran (the learner marks "
        "inner / hypergrad; the runner marks outer_update), mean over seeds."
    )
    return Table("phase_memory", title, data, tidy, note)


def plot_phase_memory(table: Table) -> tuple[Any, pd.DataFrame]:
    """Grouped horizontal bars: one group per setting/variant, one bar per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tidy = table.tidy
    phases = [c for c in tidy.columns if c not in ("setting", "variant")]
    labels = [f"{s} · {v}" for s, v in zip(tidy["setting"], tidy["variant"], strict=True)]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(tidy) * max(1, len(phases)) ** 0.5))
    height = 0.8 / max(1, len(phases))
    drawn = []
    for j, p in enumerate(phases):
        y = np.arange(len(tidy)) + height * (j - (len(phases) - 1) / 2)
        values = tidy[p].to_numpy(float)
        ax.barh(y, np.nan_to_num(values), height, label=p)
        drawn += [(lab, p, v) for lab, v in zip(labels, values, strict=True)]
    ax.set_yticks(range(len(tidy)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("peak memory above baseline (MB)")
    ax.legend(fontsize=8)
    ax.set_title("Peak memory per phase", fontsize=10)
    fig.tight_layout()
    return fig, pd.DataFrame(drawn, columns=["series", "phase", "mb"])
