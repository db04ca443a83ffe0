"""Report tables from a results folder: accuracy, memory, memory reduction, time-to-accuracy and
time per iteration. Every builder takes the DataFrames of :class:`memcomp.results.ResultsDir`
(either schema: :func:`normalize_runs` maps schema 1 onto schema 2) and returns a :class:`Table`
holding the numbers (``tidy``) and the formatted view (``data``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from memcomp.report import paper_reference as paper
from memcomp.report.memory_tables import (  # noqa: F401 - re-exported
    memory_data,
    memory_table,
    paper_memory_rows,
    reduction_table,
)
from memcomp.report.normalize import (
    MISSING,
    Table,
    _setting_order,
    _status_word,
    _variant_order,
    normalize_runs,
)
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW, tta_per_cell

__all__ = [
    "Table",
    "accuracy_table",
    "memory_data",
    "memory_table",
    "normalize_runs",
    "paper_table",
    "reduction_table",
    "time_table",
    "to_latex",
    "to_markdown",
    "tta_table",
]

# ----------------------------------------------------------------------------- accuracy


def _episode_stats(episodes: pd.DataFrame) -> pd.DataFrame:
    if episodes.empty or "acc" not in episodes.columns:
        return pd.DataFrame(columns=["ep_mean", "ep_ci95"])
    g = episodes.groupby("cell_id")["acc"]
    n = g.count()
    return pd.DataFrame({"ep_mean": g.mean(), "ep_ci95": 1.96 * g.std(ddof=1) / np.sqrt(n)})


def accuracy_table(runs: pd.DataFrame, episodes: pd.DataFrame | None = None) -> Table:
    """Test accuracy, rows = learner variant, columns = dataset/setting.

    One seed: mean ± 95% CI over test episodes. Several seeds: mean of the seeds' means ±
    1.96·std/√n over seeds, marked ``[n seeds]``. Cells where no seed finished show the status.
    """
    runs = normalize_runs(runs)
    ep = _episode_stats(episodes if episodes is not None else pd.DataFrame())
    runs = runs.join(ep, on="cell_id") if len(ep) else runs.assign(ep_mean=np.nan, ep_ci95=np.nan)
    runs["acc"] = runs["test_acc"].astype(float).fillna(runs["ep_mean"].astype(float))
    runs["ci"] = runs["test_ci95"].astype(float).fillna(runs["ep_ci95"].astype(float))
    rows = []
    for (setting, variant), sub in runs.groupby(["setting", "variant"], sort=False):
        ok = sub[(sub["status"] == "ok") & sub["acc"].notna()]
        n, n_ok = len(sub), len(ok)
        mean = ci = np.nan
        kind = ""
        if n_ok == 1:
            mean, ci, kind = float(ok["acc"].iloc[0]), float(ok["ci"].iloc[0]), "episodes"
        elif n_ok > 1:
            mean = float(ok["acc"].mean())
            ci = float(1.96 * ok["acc"].std(ddof=1) / math.sqrt(n_ok))
            kind = "seeds"
        if n_ok == 0:
            cell = _status_word(sub["status"])
        else:
            cell = f"{mean:.2f} ± {ci:.2f}" if not math.isnan(ci) else f"{mean:.2f}"
            if n_ok > 1:
                cell += f" [{n_ok} seeds]"
            if n_ok < n:
                cell += f" [{n_ok}/{n} ok, {_status_word(sub['status'])}]"
        rows.append(
            {
                "setting": setting,
                "variant": variant,
                "learner": sub["learner"].iloc[0],
                "n_runs": n,
                "n_ok": n_ok,
                "test_acc": mean,
                "ci95": ci,
                "ci_over": kind,
                "status": "ok" if n_ok else sub["status"].iloc[0],
                "cell": cell,
            }
        )
    tidy = pd.DataFrame(rows)
    data = _pivot(tidy, runs, "cell")
    note = (
        "Test accuracy (%). ± is the 95% CI over test episodes for one seed; cells marked "
        "[n seeds] show the mean of the seeds' means ± 1.96·std/√n over seeds. "
        "(The paper reports mean ± std.)"
    )
    return Table("accuracy", "Test accuracy (%)", data, tidy, note)


def _pivot(tidy: pd.DataFrame, runs: pd.DataFrame, value: str) -> pd.DataFrame:
    if tidy.empty:
        return pd.DataFrame(columns=["variant"])
    p = tidy.pivot(index="variant", columns="setting", values=value)
    p = p.reindex(index=_variant_order(runs), columns=_setting_order(runs)).fillna(MISSING)
    p.columns.name = None
    return p.reset_index()


# ----------------------------------------------------------------------------- time


def tta_table(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    fraction: float = FRACTION,
    window: int = WINDOW,
    patience: int = PATIENCE,
) -> Table:
    """Training seconds to reach ``fraction`` x Acc_max (paper definition), per variant/setting."""
    runs = normalize_runs(runs)
    per = tta_per_cell(curves, runs.set_index("cell_id")["group"], fraction, window, patience)
    per = per.merge(runs[["cell_id", "setting", "variant", "learner"]], on="cell_id")
    rows = []
    for (setting, variant), sub in per.groupby(["setting", "variant"], sort=False):
        n, hit = len(sub), int(sub["reached"].sum())
        mean = float(sub["tta_seconds"].mean()) if hit else np.nan
        if hit == 0:
            cell = "not reached"
        else:
            cell = f"{mean:.1f} s" + ("" if hit == n else f" ({hit}/{n} reached)")
        rows.append(
            {
                "setting": setting,
                "variant": variant,
                "learner": sub["learner"].iloc[0],
                "acc_max": float(sub["acc_max"].iloc[0]),
                "target": float(sub["target"].iloc[0]),
                "n_curves": n,
                "n_reached": hit,
                "tta_seconds": mean,
                "cell": cell,
            }
        )
    tidy = pd.DataFrame(rows)
    data = _pivot(tidy, runs[runs["cell_id"].isin(per["cell_id"])], "cell")
    targets = (
        "; ".join(
            f"{s}: Acc_max {a:.2f}%, target {t:.2f}%"
            for s, a, t in tidy.drop_duplicates("setting")[["setting", "acc_max", "target"]].values
        )
        if len(tidy)
        else ""
    )
    note = (
        f"Parameters: fraction={fraction}, window={window} (trailing moving average), "
        f"patience={patience}. Time = training wall-clock (train_seconds) at the first evaluation "
        f"whose smoothed validation accuracy is >= fraction x Acc_max (best raw validation "
        f"accuracy of any method on the setting) and stays there for the next {patience} "
        f"evaluations; "
        f"mean over the seeds that reached it. {targets}"
    )
    return Table("time_to_accuracy", "Time to accuracy (s)", data, tidy, note.strip())


def time_table(runs: pd.DataFrame) -> Table:
    """Seconds per outer iteration, total training seconds and (where present) CG residual."""
    runs = normalize_runs(runs)
    has_cg = runs["cg_residual"].notna().any()
    rows = []
    for (setting, variant), sub in runs.groupby(["setting", "variant"], sort=False):
        ok = sub[sub["status"] == "ok"]
        row = {
            "setting": setting,
            "variant": variant,
            "runs": len(sub),
            "ok": len(ok),
            "sec_per_iter": float(ok["sec_per_iter"].astype(float).mean()) if len(ok) else np.nan,
            "train_seconds": float(ok["train_seconds"].astype(float).mean()) if len(ok) else np.nan,
            "iterations": float(ok["iterations"].astype(float).mean()) if len(ok) else np.nan,
        }
        if has_cg:
            row["cg_residual"] = (
                float(ok["cg_residual"].astype(float).mean()) if len(ok) else np.nan
            )
        rows.append(row)
    tidy = pd.DataFrame(rows)
    data = tidy.copy()
    if len(data):
        order = {v: i for i, v in enumerate(_variant_order(runs))}
        data = data.sort_values(
            ["setting", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s
        ).reset_index(drop=True)
        fmts = {
            "sec_per_iter": "{:.4f}",
            "train_seconds": "{:.1f}",
            "iterations": "{:.0f}",
            "cg_residual": "{:.2e}",
        }
        for c, f in fmts.items():
            if c in data:
                data[c] = [MISSING if pd.isna(v) else f.format(v) for v in data[c]]
    note = "Means over ok seeds. train_seconds excludes evaluation."
    if has_cg:
        note += " cg_residual: final CG residual norm recorded by the learner (mean)."
    return Table("time_per_iter", "Time per outer iteration", data, tidy, note)


def paper_table(runs: pd.DataFrame) -> Table:
    """The paper's published accuracy and time-to-accuracy for the paper datasets in ``runs``."""
    runs = normalize_runs(runs)
    names = {paper.canonical_dataset(d): d for d in runs["dataset"].unique()}
    names.pop(None, None)
    rows = []
    for learner, by_ds in paper.ACCURACY.items():
        for key, ds in names.items():
            mean, std = by_ds[key]
            tta = paper.TIME_TO_ACCURACY[learner][key]
            rows.append(
                {
                    "learner": learner,
                    "paper_name": paper.PAPER_NAMES[learner],
                    "dataset": ds,
                    "test_acc": mean,
                    "test_std": std,
                    "tta_seconds": np.nan if tta is None else tta,
                    "cell": f"{mean:.2f} ± {std:.2f} / "
                    + ("not reached" if tta is None else f"{tta:.1f} s"),
                }
            )
    tidy = pd.DataFrame(rows)
    title = "Paper's published numbers (accuracy ± std / time to 0.9 Acc_max)"
    if tidy.empty:
        return Table("paper_reference", title, pd.DataFrame(), tidy)
    data = tidy.pivot(index="paper_name", columns="dataset", values="cell")
    data = data.reindex(index=[paper.PAPER_NAMES[k] for k in paper.ACCURACY]).reset_index()
    data.columns.name = None
    s = paper.ACCURACY_SETTING
    note = (
        f"Paper tables 5a/5c (paper.md): {s['ways']}-way {s['shots']}-shot (inferred), "
        f"{s['iterations']} outer iterations, meta-batch {s['meta_batch']}; Conv4-64 on 32x32 "
        f"CIFAR-FS/FC100, Conv4-32 on 84x84 mini/tieredImageNet; ± is a {s['spread']}, not a "
        "95% CI. Compare only with results of the same setting."
    )
    return Table("paper_reference", title, data, tidy, note)


# ----------------------------------------------------------------------------- writers


def _cells(df: pd.DataFrame) -> list[list[str]]:
    return [
        ["" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in r]
        for r in df.itertuples(index=False)
    ]


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    if df.columns.empty:
        return "_(empty)_\n"
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in _cells(df)]
    return "\n".join(lines) + "\n"


_TEX = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "±": r"$\pm$", "–": "--"}


def _tex(s: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` in a ``table`` environment (no extra dependency)."""
    spec = "l" * len(df.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(_tex(c) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(_tex(v) for v in r) + r" \\" for r in _cells(df)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
