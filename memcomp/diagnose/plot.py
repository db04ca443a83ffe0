"""Figure of the diagnostics: hypergradient error versus memory and versus time."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FLOOR = 1e-16  # exact methods: drawn at the float64 floor on the log axis


def plot_error_frontier(rows: pd.DataFrame) -> Figure:
    """Two panels: relative error (log) against peak memory and against seconds per
    meta-gradient, one line per learner and swept knob."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    for (learner, varies), group in rows.groupby(["learner", "varies"], sort=False):
        label = f"{learner} ({varies})" if varies else learner
        err = group["rel_error"].clip(lower=FLOOR)
        for ax, x in zip(axes[0], ("peak_mem_mb", "sec_per_meta_grad"), strict=True):
            ax.plot(group[x], err, marker="o", label=label)
    for ax, name in zip(axes[0], ("peak memory (MB, CPU estimate)", "seconds per meta-gradient"),
                        strict=True):  # fmt: skip
        ax.set_xlabel(name)
        ax.set_ylabel("relative error vs exact hypergradient")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="best")
    fig.suptitle("Hypergradient error against cost (same weights and tasks)")
    fig.tight_layout()
    return fig
