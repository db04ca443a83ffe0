"""Time-to-accuracy as the paper defines it (docs/design.md section 8).

target = fraction x Acc_max, where Acc_max is the best (raw) validation accuracy of any method on
the same dataset, setting and backbone. Each curve is smoothed by a trailing moving average of
``window`` evaluations; the time is the training wall-clock at the first evaluation whose smoothed
value is >= target and stays >= target for the next ``patience`` evaluations (all remaining ones if
fewer are left). Otherwise the target is "not reached" (None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FRACTION", "PATIENCE", "WINDOW", "smooth", "time_to_accuracy", "tta_per_cell"]

FRACTION = 0.9
WINDOW = 3
PATIENCE = 5


def smooth(values: Sequence[float], window: int = WINDOW) -> np.ndarray:
    """Trailing moving average; the first ``window - 1`` points average what exists so far."""
    if window < 1:
        raise ValueError(f"smooth(values, window): window must be >= 1, got {window}")
    s = pd.Series(np.asarray(values, dtype=float))
    return s.rolling(window, min_periods=1).mean().to_numpy()


def time_to_accuracy(
    times: Sequence[float],
    accs: Sequence[float],
    target: float,
    window: int = WINDOW,
    patience: int = PATIENCE,
) -> float | None:
    """Training seconds at which the smoothed curve first reaches ``target`` and holds it.

    Args:
        times: cumulative training seconds at each evaluation (sorted by iteration).
        accs: validation accuracy at each evaluation (same unit as ``target``).
        target: accuracy to reach.
        window: moving-average window (default 3).
        patience: number of following evaluations that must also stay >= target (default 5).

    Returns:
        The time, or None when the target is never reached and held.
    """
    t = np.asarray(times, dtype=float)
    a = np.asarray(accs, dtype=float)
    if t.shape != a.shape:
        raise ValueError(
            f"time_to_accuracy: times and accs differ in length: {t.shape} vs {a.shape}"
        )
    if patience < 0:
        raise ValueError(f"time_to_accuracy: patience must be >= 0, got {patience}")
    ok = np.nan_to_num(smooth(a, window), nan=-np.inf) >= target
    for i in range(len(ok)):
        if ok[i : i + patience + 1].all():
            return float(t[i])
    return None


def tta_per_cell(
    curves: pd.DataFrame,
    group_of: pd.Series,
    fraction: float = FRACTION,
    window: int = WINDOW,
    patience: int = PATIENCE,
) -> pd.DataFrame:
    """Time-to-accuracy of every cell's curve.

    Args:
        curves: curves.csv rows (cell_id, iteration, train_seconds, val_acc).
        group_of: cell_id -> comparison group (same dataset, setting and backbone).
        fraction, window, patience: see :func:`time_to_accuracy`.

    Returns:
        One row per cell with a curve: cell_id, group, acc_max, target, tta_seconds (NaN when not
        reached), reached.
    """
    cols = ["cell_id", "group", "acc_max", "target", "tta_seconds", "reached"]
    cu = curves[curves["cell_id"].isin(group_of.index)].copy()
    if cu.empty:
        return pd.DataFrame(columns=cols)
    cu["group"] = cu["cell_id"].map(group_of)
    acc_max = cu.groupby("group")["val_acc"].max()
    rows = []
    for cid, c in cu.groupby("cell_id", sort=False):
        c = c.sort_values("iteration")
        group = c["group"].iloc[0]
        target = fraction * float(acc_max[group])
        tta = time_to_accuracy(c["train_seconds"], c["val_acc"], target, window, patience)
        rows.append(
            {
                "cell_id": cid,
                "group": group,
                "acc_max": float(acc_max[group]),
                "target": target,
                "tta_seconds": np.nan if tta is None else tta,
                "reached": tta is not None,
            }
        )
    return pd.DataFrame(rows, columns=cols)
