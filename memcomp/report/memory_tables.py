"""Memory tables: peak memory versus inner steps K, and % reduction versus baseline learners."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from memcomp.report import paper_reference as paper
from memcomp.report.normalize import (
    HIDDEN,
    IMAGE_SIZE,
    MISSING,
    Table,
    _display_rank,
    _natural,
    normalize_runs,
)

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
            ref_rows = sub[sub["learner"].map(paper.learner_key) == base]
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
