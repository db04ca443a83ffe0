"""report.html of a big results folder is summaries plus a link to the full cells table, not one
row per cell; compare groups by cell once and still gives the hand-computed verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from memcomp.report import build_report
from memcomp.report.compare import compare_results
from memcomp.report.html import CELLS_CSV, INLINE_CELLS, write_html_report


def _folder(path: Path, n: int, acc_shift: float = 0.0) -> Path:
    path.mkdir(parents=True)
    i = np.arange(n)
    runs = pd.DataFrame(
        {
            "cell_id": [f"c{k:05d}" for k in i],
            "learner": np.where(i % 2, "maml", "mrml"),
            "dataset": "glyphs", "ways": 5, "shots": 1, "queries": 5, "backbone": "conv4",
            "dataset.image_size": 28, "backbone.hidden": 8,
            "learner.inner_steps": 1 + (i // 2) % 5, "seed": i // 10,
            "status": np.where(i % 97 == 0, "error", "ok"),
            "test_acc": 50.0 + i % 7, "test_ci95": 1.0, "peak_mem_mb": 10.0 + i % 5,
            "sec_per_iter": 0.1, "train_seconds": 3.0, "iterations": 10,
            "mem_source": "cpu-estimate",
        }
    )  # fmt: skip
    runs.to_csv(path / "runs.csv", index=False)
    return path


def test_a_5000_cell_page_summarises_and_links_the_full_table(tmp_path: Path) -> None:
    run = _folder(tmp_path / "run", 5000)
    rep = build_report(run)
    page = write_html_report(run, rep, run / "report").read_text()
    cells_table = page.split('id="table-cells"', 1)[1].split("</table>", 1)[0]
    assert cells_table.count("<tr>") == INLINE_CELLS + 1  # header + one page, not 5000 rows
    assert page.count('<details id="cell-') == INLINE_CELLS
    assert f'href="./{CELLS_CSV}"' in page and "5000 cells" in page
    assert 'id="table-accuracy"' in page  # the per-setting summaries stay inline
    full = pd.read_csv(run / "report" / CELLS_CSV)
    assert len(full) == 5000 and set(full["cell_id"]) == {f"c{k:05d}" for k in range(5000)}


def test_a_small_page_keeps_every_cell_inline(tmp_path: Path) -> None:
    run = _folder(tmp_path / "run", 30)
    page = write_html_report(run, build_report(run), run / "report").read_text()
    assert all(f'id="cell-c{k:05d}"' in page for k in range(30))
    assert CELLS_CSV not in page and not (run / "report" / CELLS_CSV).exists()


def test_compare_verdicts_match_a_hand_computation(tmp_path: Path) -> None:
    base, new = _folder(tmp_path / "b", 3), _folder(tmp_path / "n", 3)
    rng = np.random.default_rng(1)
    acc = {c: rng.uniform(40, 60, 20) for c in ("c00001", "c00002")}
    eb = pd.DataFrame([(c, e, a[e]) for c, a in acc.items() for e in range(20)],
                      columns=["cell_id", "episode", "acc"])  # fmt: skip
    en = eb.copy()
    en.loc[en["cell_id"] == "c00002", "acc"] -= 5.0 + rng.uniform(0, 1, 20)  # worse
    eb.sample(frac=1, random_state=0).to_csv(base / "episodes.csv", index=False)  # any order
    en.to_csv(new / "episodes.csv", index=False)
    cmp = compare_results(base, new)
    got = {(c.cell_id, c.metric): c for c in cmp.changes}
    assert got[("c00000", "status")].verdict == "within noise"  # error on both sides
    for cid in ("c00001", "c00002"):
        a, b = eb[eb.cell_id == cid]["acc"].to_numpy(), en[en.cell_id == cid]["acc"].to_numpy()
        c = got[(cid, "accuracy")]
        if cid == "c00001":
            assert c.verdict == "within noise" and c.p_value == 1.0  # identical episodes
        else:
            p = stats.ttest_rel(b, a).pvalue
            assert c.p_value == float(p) and c.verdict == "regression"
            assert abs(c.change - (b.mean() - a.mean())) < 1e-12
    assert len(cmp.matched) == 3 and not cmp.only_base and not cmp.only_new


def test_accuracy_vs_time_of_a_big_sweep_has_no_legend_and_no_layout_warning(
    tmp_path: Path,
) -> None:
    import warnings

    from memcomp.report.plots import MAX_LEGEND, plot_val_vs_time
    from memcomp.report.sections import ReportInput

    run = _folder(tmp_path / "run", 200)
    runs = pd.read_csv(run / "runs.csv")
    runs["learner.inner_steps"] = np.arange(200) // 4 + 1  # 50 variants in one setting
    runs.to_csv(run / "runs.csv", index=False)
    ids = runs["cell_id"].repeat(3).to_numpy()
    curves = pd.DataFrame(
        {"cell_id": ids, "iteration": np.tile([2, 4, 6], 200),
         "train_seconds": np.tile([1.0, 2.0, 3.0], 200), "val_acc": 50.0, "val_ci95": 1.0}
    )  # fmt: skip
    curves.to_csv(run / "curves.csv", index=False)
    inp = ReportInput.read(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tight_layout's "not applied" warning fails the test
        fig, data = plot_val_vs_time(inp.runs, inp.curves)
    assert data["variant"].nunique() > MAX_LEGEND
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert any("variants: no legend" in t.get_text() for ax in fig.axes for t in ax.texts)
