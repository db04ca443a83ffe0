"""Report tables from a results folder: accuracy, memory, memory reduction, time-to-accuracy and
time per iteration. Every builder takes the DataFrames of :class:`memcomp.results.ResultsDir`
(either schema: :func:`normalize_runs` maps schema 1 onto schema 2) and returns a :class:`Table`
holding the numbers (``tidy``) and the formatted view (``data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from memcomp.report import paper_reference as paper
from memcomp.report.tta import FRACTION, PATIENCE, WINDOW, tta_per_cell
from memcomp.results.schema import (
    RUN_COLUMNS,
    param_columns,
    param_name,
    schema_version,
    upgrade_runs,
)

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

# Run columns (besides learner parameters) that, when they differ, make a different variant.
# Learner, dataset and backbone parameters are the schema's prefixed columns (never guessed).
TRAIN_KNOBS = [
    "iterations",
    "meta_batch",
    "outer_lr",
    "optimizer",
    "dtype",
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
    key = paper.canonical_learner(name) or name
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


# ----------------------------------------------------------------------------- memory


def memory_data(runs: pd.DataFrame) -> pd.DataFrame:
    """Peak memory (MB) per setting, learner variant (without K) and K; mean over seeds.

    Memory is measured before training, so a run that later diverged or failed still counts if it
    recorded a peak; an ``oom`` run never does (its number is the peak at the failure).

    Columns: setting, group, learner, variant, K, peak_mem_mb, baseline_mb, status, mem_source,
    n_runs, panel (the paper's Figure 2 panel of the same shape, or "").
    """
    cols = ["setting", "group", "learner", "variant", "K", "peak_mem_mb", "baseline_mb"]
    cols += ["status", "mem_source", "n_runs", "panel"]
    runs = normalize_runs(runs)
    runs["peak_mem_mb"] = pd.to_numeric(runs["peak_mem_mb"], errors="coerce")
    runs["mem_baseline_mb"] = pd.to_numeric(runs["mem_baseline_mb"], errors="coerce")
    has = runs["peak_mem_mb"].notna() | (runs["status"] == "oom")
    runs = runs[has & runs["K"].notna()]
    rows = []
    for (setting, variant, k), sub in runs.groupby(["setting", "variant_nok", "K"], sort=False):
        ok = sub[(sub["status"] != "oom") & sub["peak_mem_mb"].notna()]
        srcs = sorted(set(ok["mem_source"]) - {"none", "nan"})
        first = sub.iloc[0]
        p = _panel(first)
        rows.append(
            {
                "setting": setting,
                "group": first["group"],
                "learner": first["learner"],
                "variant": variant,
                "K": int(k),
                "peak_mem_mb": float(ok["peak_mem_mb"].mean()) if len(ok) else np.nan,
                "baseline_mb": float(ok["mem_baseline_mb"].mean()) if len(ok) else np.nan,
                "status": "ok" if len(ok) else "oom",
                "mem_source": "+".join(srcs) if srcs else "none",
                "n_runs": len(sub),
                "panel": p.name if p else "",
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _panel(row: pd.Series) -> paper.MemoryPanel | None:
    try:
        return paper.memory_panel_for(
            int(row[IMAGE_SIZE]),
            str(row["backbone"]),
            int(row[HIDDEN]),
            int(row["ways"]),
            int(row["shots"]),
            int(row["queries"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def paper_memory_rows(mem: pd.DataFrame) -> pd.DataFrame:
    """The paper's Figure 2 values for settings whose shape matches a paper panel."""
    rows = []
    for setting, sub in mem[mem["panel"] != ""].groupby("setting", sort=False):
        panel = next(p for p in paper.MEMORY_PANELS if p.name == sub["panel"].iloc[0])
        for learner, by_k in panel.values.items():
            for k, mb in by_k.items():
                rows.append(
                    {
                        "setting": setting,
                        "learner": learner,
                        "variant": f"paper {paper.PAPER_NAMES[learner]}",
                        "K": k,
                        "peak_mem_mb": mb,
                        "panel": panel.name,
                    }
                )
    return pd.DataFrame(
        rows, columns=["setting", "learner", "variant", "K", "peak_mem_mb", "panel"]
    )


def memory_table(runs: pd.DataFrame) -> Table:
    """Peak memory (MB) vs inner steps K, with the paper's values where the shape matches."""
    mem = memory_data(runs)
    pap = paper_memory_rows(mem)
    tidy = pd.concat(
        [mem.assign(source="memcomp"), pap.assign(source="paper", status="ok", mem_source="cuda")],
        ignore_index=True,
    )
    if mem.empty:
        return Table("memory", "Peak memory (MB) vs inner steps K", pd.DataFrame(), tidy)
    tidy["cell"] = [
        f"{m:.1f}" if s == "ok" and not math.isnan(m) else str(s).upper()
        for m, s in zip(tidy["peak_mem_mb"], tidy["status"], strict=True)
    ]
    ks = sorted(tidy.loc[tidy["source"] == "memcomp", "K"].unique())
    tidy = tidy[tidy["K"].isin(ks)].reset_index(drop=True)
    order = {s: i for i, s in enumerate(dict.fromkeys(mem["setting"]))}
    p = tidy.pivot_table(
        index=["setting", "source", "variant"], columns="K", values="cell", aggfunc="first"
    )
    p = p.reindex(columns=ks).fillna(MISSING)
    p.columns = [f"K={k}" for k in ks]
    p = p.reset_index()
    p["_o"] = p["setting"].map(order)
    p["_l"] = [_display_rank(v) for v in p["variant"]]
    p = p.sort_values(["_o", "source", "_l", "variant"]).drop(columns=["_o", "_l"])
    src = (
        tidy[tidy["source"] == "memcomp"]
        .groupby("setting")["mem_source"]
        .agg(lambda s: "+".join(sorted(set("+".join(s).split("+")) - {"none"})) or "none")
    )
    p.insert(
        1,
        "mem_source",
        [
            src.get(s, "") if o == "memcomp" else "cuda"
            for s, o in zip(p["setting"], p["source"], strict=True)
        ],
    )
    base = mem.groupby("setting")["baseline_mb"].mean()
    p.insert(
        2,
        "baseline_mb",
        [
            f"{base.get(s, np.nan):.1f}" if o == "memcomp" and pd.notna(base.get(s)) else MISSING
            for s, o in zip(p["setting"], p["source"], strict=True)
        ],
    )
    note = (
        "memcomp: peak_mem_mb as recorded, i.e. the peak ABOVE the region's baseline (weights, "
        "optimiser state, task data; its mean is in baseline_mb), mean over seeds. mem_source: "
        "cuda = torch.cuda.max_memory_allocated; cpu-estimate = memcomp's CPU estimate of what "
        "the CUDA allocator would report. Paper rows: Figure 2 of the paper, absolute "
        "max_memory_allocated per outer iteration, so they include what memcomp's baseline "
        "holds (5-way 5-shot, 5 queries; 84x84 Conv4-32 = miniImageNet/tieredImageNet panel, "
        "32x32 Conv4-64 = CIFAR-FS/FC100 panel)."
    )
    return Table(
        "memory", "Peak memory (MB) vs inner steps K", p.reset_index(drop=True), tidy, note
    )


def reduction_table(runs: pd.DataFrame, baselines: tuple[str, ...] = ("maml", "anil")) -> Table:
    """% memory reduction of each learner variant versus each baseline learner at the same K."""
    mem = memory_data(runs)
    pap = paper_memory_rows(mem).assign(source="paper", status="ok")
    ks = mem.groupby("setting")["K"].agg(set)
    pap = pap[[k in ks.get(s, set()) for s, k in zip(pap["setting"], pap["K"], strict=True)]]
    allm = pd.concat([mem.assign(source="memcomp"), pap], ignore_index=True)
    rows = []
    notes = []
    for (setting, source), sub in allm.groupby(["setting", "source"], sort=False):
        for base in baselines:
            ref_rows = sub[sub["learner"].map(lambda n: paper.canonical_learner(n) or n) == base]
            if ref_rows.empty:
                continue
            ref_variant = sorted(ref_rows["variant"].unique(), key=_natural)[0]
            if ref_rows["variant"].nunique() > 1:
                notes.append(f"{setting}: {base} reference is '{ref_variant}'")
            ref = ref_rows[ref_rows["variant"] == ref_variant].set_index("K")
            for _, r in sub[sub["variant"] != ref_variant].iterrows():
                k = r["K"]
                if k not in ref.index:
                    continue
                rmb, rst = ref.at[k, "peak_mem_mb"], ref.at[k, "status"]
                red = np.nan
                if r["status"] != "ok":
                    cell = str(r["status"]).upper()
                elif rst != "ok":
                    cell = f"{base} {str(rst).upper()}"
                else:
                    red = 100.0 * (1.0 - r["peak_mem_mb"] / rmb)
                    cell = f"{red:.1f}%"
                rows.append(
                    {
                        "setting": setting,
                        "source": source,
                        "variant": r["variant"],
                        "versus": base,
                        "K": int(k),
                        "reduction_pct": red,
                        "cell": cell,
                    }
                )
    cols = ["setting", "source", "variant", "versus", "K", "reduction_pct", "cell"]
    tidy = pd.DataFrame(rows, columns=cols)
    title = "Peak memory reduction (%) versus " + " and ".join(baselines)
    if tidy.empty:
        return Table("memory_reduction", title, pd.DataFrame(), tidy)
    tidy["col"] = "vs " + tidy["versus"] + " K=" + tidy["K"].astype(str)
    colorder = [
        f"vs {b} K={k}"
        for b in baselines
        for k in sorted(tidy["K"].unique())
        if f"vs {b} K={k}" in set(tidy["col"])
    ]
    p = tidy.pivot_table(
        index=["setting", "source", "variant"], columns="col", values="cell", aggfunc="first"
    )
    p = p.reindex(columns=colorder).fillna(MISSING).reset_index()
    p["_l"] = [_display_rank(v) for v in p["variant"]]
    p = p.sort_values(["setting", "source", "_l", "variant"]).drop(columns="_l")
    p.columns.name = None
    note = "100 × (1 − memory / baseline memory) at the same K; positive = less memory."
    if notes:
        note += " " + "; ".join(dict.fromkeys(notes)) + "."
    return Table(
        "memory_reduction", title, p.reset_index(drop=True), tidy.drop(columns="col"), note
    )


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
