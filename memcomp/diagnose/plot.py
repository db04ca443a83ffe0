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


def plot_memory_vs_k(runs: pd.DataFrame) -> Figure:
    """Peak memory (log) against inner steps K (log), one line per learner, from a runs table
    (``learner``, ``inner_steps`` or ``learner.inner_steps``, ``peak_mem_mb``): linear, sqrt and
    flat growth are straight lines of slope 1, 1/2 and 0."""
    k = "learner.inner_steps" if "learner.inner_steps" in runs.columns else "inner_steps"
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for learner, group in runs[runs["status"] == "ok"].groupby("learner", sort=False):
        group = group.sort_values(k)
        ax.plot(group[k], group["peak_mem_mb"], marker="o", label=learner)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inner-loop steps K")
    ax.set_ylabel(f"peak memory above baseline (MB, {runs['mem_source'].iloc[0]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Memory families: 32x32 Conv4-64, 5-way 5-shot, one task")
    fig.tight_layout()
    return fig
