"""Report figures. Each ``plot_*`` takes results DataFrames and returns the matplotlib Figure and
the tidy data it drew (one row per bar or curve point), so tests can check the data, not pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")  # report rendering never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from memcomp.report import paper_reference as paper  # noqa: E402
from memcomp.report.memory_tables import memory_data, paper_memory_rows  # noqa: E402
from memcomp.report.normalize import (  # noqa: E402
    _learner_rank,
    _natural,
    _variant_order,
    normalize_runs,
)
from memcomp.report.tta import FRACTION  # noqa: E402

__all__ = [
    "learner_order",
    "plot_memory",
    "plot_memory_vs_k",
    "plot_val_vs_time",
    "variant_styles",
]

LINE_STYLES = ("-", "--", ":", "-.")  # a learner's 1st, 2nd... variant

BAR_COLUMNS = ["setting", "series", "source", "learner", "K", "x", "height", "drawn_height"]
BAR_COLUMNS += ["oom", "status"]
CURVE_COLUMNS = ["setting", "variant", "iteration", "train_seconds", "val_acc", "n_seeds"]
MAX_LEGEND = 24  # lines in a panel above which the accuracy-vs-time panel has no legend


def _grid(n: int, w: float = 6.0, h: float = 4.0) -> tuple[Figure, list[plt.Axes]]:
    cols = min(max(n, 1), 2)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[: max(n, 1)]


def _empty(message: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def learner_order(names: Iterable[str]) -> list[str]:
    """The learners of ``names`` (paper keys where they have one) in the figures' order: the
    i-th gets colour i, in the static figures and in report.html's interactive charts alike."""
    return sorted({paper.learner_key(str(n)) for n in names}, key=lambda n: (_learner_rank(n), n))


def variant_styles(runs: pd.DataFrame) -> dict[str, tuple[str, int, int]]:
    """Variant -> (learner, colour index, line-style index): one colour per learner
    (:func:`learner_order`), one line style per variant of that learner."""
    learners = learner_order(runs["learner"])
    out: dict[str, tuple[str, int, int]] = {}
    seen: dict[str, int] = {}
    for v in _variant_order(runs):
        learner = paper.learner_key(runs.loc[runs["variant"] == v, "learner"].iloc[0])
        i = seen[learner] = seen.get(learner, -1) + 1
        out[v] = (learner, learners.index(learner), i)
    return out


def _line_styles(runs: pd.DataFrame) -> dict[str, tuple[tuple[float, ...], str]]:
    """Variant -> (colour, line style) for matplotlib (:func:`variant_styles`)."""
    cmap = plt.get_cmap("tab10")
    return {
        v: (cmap(c % 10), LINE_STYLES[s % len(LINE_STYLES)])
        for v, (_, c, s) in variant_styles(runs).items()
    }


def plot_memory(runs: pd.DataFrame, with_paper: bool = True) -> tuple[Figure, pd.DataFrame]:
    """Grouped bars of peak memory (MB) versus inner steps K, one panel per setting.

    OOM cells are hatched placeholder bars labelled OOM (``height`` NaN, ``oom`` True). Where the
    setting's shape matches a paper Figure 2 panel, the paper's bars for the learners present are
    drawn beside memcomp's, lighter and labelled "paper".
    """
    mem = memory_data(runs)
    if mem.empty:
        return _empty("no memory data"), pd.DataFrame(columns=BAR_COLUMNS)
    pap = paper_memory_rows(mem) if with_paper else paper_memory_rows(mem.iloc[0:0])
    settings = list(dict.fromkeys(mem["setting"]))
    fig, axes = _grid(len(settings))
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(learner_order(mem["learner"]))}
    drawn = []
    for ax, setting in zip(axes, settings, strict=True):
        m = mem[mem["setting"] == setting]
        ks = sorted(m["K"].unique())
        present = {paper.learner_key(n) for n in m["learner"]}
        p = pap[(pap["setting"] == setting) & pap["learner"].isin(present) & pap["K"].isin(ks)]
        series = [
            ("memcomp", v, paper.learner_key(n))
            for v, n in zip(m["variant"], m["learner"], strict=True)
        ]
        series += [
            ("paper", v, paper.learner_key(n))
            for v, n in zip(p["variant"], p["learner"], strict=True)
        ]
        # each learner's bars side by side: memcomp variants, then the paper's bar
        series = sorted(
            dict.fromkeys(series), key=lambda s: (_learner_rank(s[2]), s[2], s[0], _natural(s[1]))
        )
        width = 0.8 / len(series)
        top = float(np.nanmax(np.r_[m["peak_mem_mb"].to_numpy(float), p["peak_mem_mb"], 1.0]))
        for j, (source, v, _) in enumerate(series):
            src = m if source == "memcomp" else p
            rows = src[src["variant"] == v].set_index("K")
            learner = paper.learner_key(rows["learner"].iloc[0])
            for i, k in enumerate(ks):
                if k not in rows.index:
                    continue
                r = rows.loc[k]
                x = i - 0.4 + width * (j + 0.5)
                status = r["status"] if source == "memcomp" else "ok"
                oom = status != "ok"
                h = float("nan") if oom else float(r["peak_mem_mb"])
                dh = top * 1.05 if oom else h
                kw = {"color": colour.get(learner, "grey"), "edgecolor": "black", "linewidth": 0.4}
                if source == "paper":
                    kw["alpha"] = 0.35
                if oom:
                    kw.update(color="none", hatch="///", edgecolor=colour.get(learner, "grey"))
                ax.bar(x, dh, width, label=None, **kw)
                if oom:
                    ax.text(x, dh, str(status).upper(), ha="center", va="bottom", fontsize=7)
                drawn.append([setting, v, source, learner, int(k), x, h, dh, oom, status])
            ax.bar(
                np.nan,
                np.nan,
                width,
                color=colour.get(learner, "grey"),
                alpha=0.35 if source == "paper" else 1.0,
                label=v,
            )
        srcs = sorted(set("+".join(m["mem_source"]).split("+")) - {"none"}) or ["none"]
        panel = m["panel"].iloc[0]
        title = f"{setting}" + (f" (paper panel: {panel})" if panel else "")
        ax.set_title(f"{title}\nmem_source: {'+'.join(srcs)}", fontsize=9)
        ax.set_xticks(range(len(ks)), [f"K={k}" for k in ks])
        ax.set_xlabel("inner-loop steps K")
        ax.set_ylabel("peak memory (MB)")
        ax.legend(fontsize=7)
    sub = "memcomp: peak above baseline (weights, optimiser state, data)"
    if len(pap) and len(drawn) and any(d[2] == "paper" for d in drawn):
        sub += "; paper (lighter): absolute max_memory_allocated, Figure 2"
    fig.suptitle(f"Peak memory vs inner-loop steps\n{sub}", fontsize=10)
    fig.tight_layout()
    return fig, pd.DataFrame(drawn, columns=BAR_COLUMNS)


def plot_val_vs_time(
    runs: pd.DataFrame, curves: pd.DataFrame, fraction: float = FRACTION
) -> tuple[Figure, pd.DataFrame]:
    """Validation accuracy versus training wall-clock, one line per variant, one panel per setting.

    Several seeds are averaged per evaluation iteration (mean seconds, mean accuracy). A dashed
    line marks ``fraction`` x Acc_max, the time-to-accuracy target.
    """
    runs = normalize_runs(runs)
    if curves.empty or runs.empty:
        return _empty("no validation curves"), pd.DataFrame(columns=CURVE_COLUMNS)
    cu = curves.merge(runs[["cell_id", "setting", "variant", "learner"]], on="cell_id")
    if cu.empty:
        return _empty("no validation curves"), pd.DataFrame(columns=CURVE_COLUMNS)
    agg = (
        cu.groupby(["setting", "variant", "iteration"], sort=False)
        .agg(
            train_seconds=("train_seconds", "mean"),
            val_acc=("val_acc", "mean"),
            n_seeds=("cell_id", "nunique"),
        )
        .reset_index()
        .sort_values(["setting", "variant", "iteration"])
    )
    settings = list(dict.fromkeys(runs["setting"][runs["setting"].isin(agg["setting"])]))
    style = _line_styles(runs)
    order = {v: i for i, v in enumerate(style)}
    agg = agg.sort_values(
        ["setting", "variant", "iteration"],
        key=lambda c: c.map(order) if c.name == "variant" else c,
    )
    fig, axes = _grid(len(settings))
    for ax, setting in zip(axes, settings, strict=True):
        a = agg[agg["setting"] == setting]
        for v, c in a.groupby("variant", sort=False):
            colour, ls = style[v]
            ax.plot(c["train_seconds"], c["val_acc"], marker=".", color=colour, ls=ls, label=v)
        target = fraction * float(cu.loc[cu["setting"] == setting, "val_acc"].max())
        ax.axhline(target, ls="--", color="grey", lw=0.8, label=f"{fraction:g} × Acc_max")
        seeds = sorted(a["n_seeds"].unique())
        sub = f"mean of {seeds[0]} seeds" if seeds == [seeds[0]] and seeds[0] > 1 else ""
        sub = sub or (f"mean over {'/'.join(map(str, seeds))} seeds" if len(seeds) > 1 else "")
        ax.set_title(setting + (f"\n{sub}" if sub else ""), fontsize=9)
        ax.set_xlabel("training wall-clock (s)")
        ax.set_ylabel("validation accuracy (%)")
        lines = a["variant"].nunique()
        if lines <= MAX_LEGEND:
            ax.legend(fontsize=7)
        else:  # a legend of a big sweep covers the panel (and defeats tight_layout)
            note = f"{lines} variants: no legend (time_to_accuracy table, report.html)"
            ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, va="bottom")
    fig.suptitle("Validation accuracy vs training time")
    fig.tight_layout()
    return fig, agg[CURVE_COLUMNS].reset_index(drop=True)


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
