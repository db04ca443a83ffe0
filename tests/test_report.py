"""Report tables, plot data and build_report on a hand-built results folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from memcomp.report import build_report, print_report
from memcomp.report import paper_reference as paper
from memcomp.report.plots import plot_memory, plot_val_vs_time
from memcomp.report.tables import (
    accuracy_table,
    memory_table,
    normalize_runs,
    paper_table,
    reduction_table,
    time_table,
    tta_table,
)
from memcomp.results.schema import CURVE_COLUMNS, EPISODE_COLUMNS, RUN_COLUMNS

LEARNERS = ("maml", "anil", "mrml")
KS = (5, 10, 20)
SEEDS = (0, 1)
# (dataset, image_size, hidden, ways, shots, queries): glyphs matches the paper's CIFAR panel.
DATASETS = {"glyphs": (32, 64, 5, 5, 5), "synthetic": (28, 32, 5, 1, 15)}
BASE_MB = {"maml": 100.0, "anil": 60.0, "mrml": 40.0}
SLOPE_MB = {"maml": 20.0, "anil": 10.0, "mrml": 0.1}
FINAL = {"maml": 40.0, "anil": 60.0, "mrml": 70.0}
OOM = ("glyphs", "maml", 20)  # both seeds run out of memory


def mem_mb(learner: str, k: int, seed: int) -> float:
    return BASE_MB[learner] + SLOPE_MB[learner] * k + 0.5 * seed


def test_acc(learner: str, k: int, seed: int) -> float:
    return FINAL[learner] + 0.1 * k + 1.0 * seed


test_acc.__test__ = False  # type: ignore[attr-defined]


def make_results(path: Path) -> Path:
    """A schema-1 results folder: 3 learners x 2 datasets x K 5/10/20 x 2 seeds."""
    runs, curves, episodes = [], [], []
    for ds, (size, hidden, ways, shots, queries) in DATASETS.items():
        for learner in LEARNERS:
            for k in KS:
                for seed in SEEDS:
                    cid = f"{ds}-{learner}-{k}-{seed}"
                    oom = (ds, learner, k) == OOM
                    row = dict.fromkeys(RUN_COLUMNS, np.nan)
                    spi = 0.01 * k * (2.0 if learner == "maml" else 1.0)
                    row.update(
                        cell_id=cid,
                        suite="fixture",
                        status="oom" if oom else "ok",
                        dataset=ds,
                        ways=ways,
                        shots=shots,
                        queries=queries,
                        image_size=size,
                        backbone="conv4",
                        hidden=hidden,
                        learner=learner,
                        seed=seed,
                        peak_mem_mb=np.nan if oom else mem_mb(learner, k, seed),
                        mem_source="none" if oom else "cpu-estimate",
                        sec_per_iter=np.nan if oom else spi,
                        train_seconds=np.nan if oom else 100 * spi,
                        iterations=100,
                        memcomp_version="0.0.9",
                        inner_steps=k,
                        inner_lr=0.1,
                        cg_steps=20 if learner == "mrml" else np.nan,
                        cg_residual=1e-3 if learner == "mrml" and not oom else np.nan,
                    )
                    if oom:
                        runs.append(row)
                        continue
                    acc = test_acc(learner, k, seed)
                    eps = acc + np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
                    row.update(test_acc=acc, test_ci95=1.96 * eps.std(ddof=1) / math.sqrt(5))
                    runs.append(row)
                    episodes += [(cid, i, a) for i, a in enumerate(eps)]
                    for it in range(0, 101, 10):
                        v = FINAL[learner] * (1.0 - math.exp(-it / 20.0)) + seed
                        curves.append((cid, it, it * spi, v, 1.0))
    path.mkdir(parents=True, exist_ok=True)
    # the previous layout (results schema 1): bare parameter columns
    cols = RUN_COLUMNS + ["image_size", "hidden", "inner_steps", "inner_lr", "cg_steps"]
    pd.DataFrame(runs).reindex(columns=cols).to_csv(path / "runs.csv", index=False)
    pd.DataFrame(curves, columns=CURVE_COLUMNS).to_csv(path / "curves.csv", index=False)
    pd.DataFrame(episodes, columns=EPISODE_COLUMNS).to_csv(path / "episodes.csv", index=False)
    manifest = {"suite": "fixture", "versions": {"memcomp": "0.0.9", "torch": "2.x"}}
    (path / "manifest.json").write_text(json.dumps({**manifest, "device": "cpu"}))
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def frames(results: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_csv(results / f"{n}.csv") for n in ("runs", "curves", "episodes")}


def test_variant_labels_only_show_what_varies(frames: dict[str, pd.DataFrame]) -> None:
    runs = normalize_runs(frames["runs"])
    assert set(runs["variant"]) == {f"{lr} K={k}" for lr in LEARNERS for k in KS}
    assert set(runs["variant_nok"]) == set(LEARNERS)
    assert set(runs["setting"]) == {"glyphs 5w5s", "synthetic 5w1s"}


def test_accuracy_table(frames: dict[str, pd.DataFrame]) -> None:
    t = accuracy_table(frames["runs"], frames["episodes"])
    data = t.data.set_index("variant")
    assert list(data.columns) == ["glyphs 5w5s", "synthetic 5w1s"]
    assert list(data.index[:3]) == ["maml K=5", "maml K=10", "maml K=20"]
    accs = [test_acc("mrml", 20, s) for s in SEEDS]
    mean, ci = np.mean(accs), 1.96 * np.std(accs, ddof=1) / math.sqrt(2)
    assert data.loc["mrml K=20", "synthetic 5w1s"] == f"{mean:.2f} ± {ci:.2f} [2 seeds]"
    assert data.loc["maml K=20", "glyphs 5w5s"] == "OOM"
    tidy = t.tidy.set_index(["setting", "variant"])
    assert tidy.loc[("glyphs 5w5s", "anil K=10"), "test_acc"] == pytest.approx(
        np.mean([test_acc("anil", 10, s) for s in SEEDS])
    )
    assert tidy.loc[("glyphs 5w5s", "anil K=10"), "ci_over"] == "seeds"


def test_accuracy_single_seed_uses_episode_ci(frames: dict[str, pd.DataFrame]) -> None:
    runs = frames["runs"][frames["runs"]["seed"] == 1]
    t = accuracy_table(runs.drop(columns=["test_ci95"]), frames["episodes"])
    cell = t.data.set_index("variant").loc["anil K=5", "glyphs 5w5s"]
    eps = test_acc("anil", 5, 1) + np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    ci = 1.96 * eps.std(ddof=1) / math.sqrt(5)
    assert cell == f"{test_acc('anil', 5, 1):.2f} ± {ci:.2f}"


def test_memory_table_and_reduction(frames: dict[str, pd.DataFrame]) -> None:
    t = memory_table(frames["runs"])
    ours = t.tidy[t.tidy["source"] == "memcomp"].set_index(["setting", "variant", "K"])
    expect = np.mean([mem_mb("mrml", 10, s) for s in SEEDS])
    assert ours.loc[("glyphs 5w5s", "mrml", 10), "peak_mem_mb"] == pytest.approx(expect)
    assert ours.loc[("glyphs 5w5s", "maml", 20), "status"] == "oom"
    assert ours.loc[("glyphs 5w5s", "mrml", 10), "mem_source"] == "cpu-estimate"
    paper_rows = t.tidy[t.tidy["source"] == "paper"]
    assert set(paper_rows["setting"]) == {"glyphs 5w5s"}  # 32x32 Conv4-64 5w5s q5 only
    assert set(paper_rows["K"]) == {5, 10, 20}
    shown = t.data.set_index(["setting", "source", "variant"])
    assert shown.loc[("glyphs 5w5s", "memcomp", "maml"), "K=20"] == "OOM"
    assert shown.loc[("glyphs 5w5s", "paper", "paper MAML"), "K=5"] == "262.0"

    red = reduction_table(frames["runs"]).tidy.set_index(
        ["setting", "source", "variant", "versus", "K"]
    )
    m = np.mean([mem_mb("mrml", 5, s) for s in SEEDS])
    ref = np.mean([mem_mb("maml", 5, s) for s in SEEDS])
    got = red.loc[("synthetic 5w1s", "memcomp", "mrml", "maml", 5), "reduction_pct"]
    assert got == pytest.approx(100 * (1 - m / ref))
    assert np.isnan(red.loc[("glyphs 5w5s", "memcomp", "mrml", "maml", 20), "reduction_pct"])
    pap = red.loc[("glyphs 5w5s", "paper", "paper Algorithm 1", "anil", 20), "reduction_pct"]
    assert pap == pytest.approx(100 * (1 - 78.2 / 491.8))


def test_tta_table(frames: dict[str, pd.DataFrame]) -> None:
    t = tta_table(frames["runs"], frames["curves"])
    tidy = t.tidy.set_index(["setting", "variant"])
    # Acc_max = mrml seed 1 final curve value; maml tops out at 40 + 1 < 0.9 * 71.
    acc_max = FINAL["mrml"] * (1 - math.exp(-5.0)) + 1
    assert tidy.loc[("glyphs 5w5s", "mrml K=5"), "acc_max"] == pytest.approx(acc_max)
    assert tidy.loc[("glyphs 5w5s", "maml K=5"), "n_reached"] == 0
    assert t.data.set_index("variant").loc["maml K=5", "glyphs 5w5s"] == "not reached"
    assert tidy.loc[("glyphs 5w5s", "mrml K=5"), "n_reached"] == 2
    assert "fraction=0.9" in t.note and "window=3" in t.note and "patience=5" in t.note
    assert "fraction=0.5" in tta_table(frames["runs"], frames["curves"], fraction=0.5).note


def test_time_table(frames: dict[str, pd.DataFrame]) -> None:
    t = time_table(frames["runs"])
    tidy = t.tidy.set_index(["setting", "variant"])
    assert tidy.loc[("glyphs 5w5s", "maml K=10"), "sec_per_iter"] == pytest.approx(0.2)
    assert tidy.loc[("glyphs 5w5s", "mrml K=10"), "cg_residual"] == pytest.approx(1e-3)
    assert np.isnan(tidy.loc[("glyphs 5w5s", "maml K=20"), "sec_per_iter"])


def test_plot_memory_data(frames: dict[str, pd.DataFrame]) -> None:
    fig, drawn = plot_memory(frames["runs"])
    assert len(fig.axes) >= 2
    ours = drawn[drawn["source"] == "memcomp"]
    assert len(ours) == 2 * len(LEARNERS) * len(KS)
    for r in ours.itertuples():
        if (r.setting.split()[0], r.learner, r.K) == OOM:
            assert r.oom and np.isnan(r.height) and r.drawn_height > 0
        else:
            ds = r.setting.split()[0]
            assert not r.oom
            want = np.mean([mem_mb(r.learner, r.K, s) for s in SEEDS])
            assert r.height == pytest.approx(want), (ds, r.learner, r.K)
    pap = drawn[drawn["source"] == "paper"]
    assert set(pap["setting"]) == {"glyphs 5w5s"}
    assert set(pap["learner"]) == set(LEARNERS)  # no ITD-BiO: not in the results
    panel = paper.MEMORY_PANELS[1]
    for r in pap.itertuples():
        assert r.height == pytest.approx(panel.values[r.learner][r.K])
    # Bars of one K stay inside that K's slot.
    assert ((drawn["x"] - drawn["K"].map({5: 0, 10: 1, 20: 2})).abs() < 0.4).all()
    _, no_paper = plot_memory(frames["runs"], with_paper=False)
    assert (no_paper["source"] == "memcomp").all()


def test_plot_val_vs_time_data(frames: dict[str, pd.DataFrame]) -> None:
    fig, drawn = plot_val_vs_time(frames["runs"], frames["curves"])
    assert set(drawn["setting"]) == {"glyphs 5w5s", "synthetic 5w1s"}
    c = drawn[(drawn["setting"] == "synthetic 5w1s") & (drawn["variant"] == "anil K=10")]
    assert list(c["iteration"]) == list(range(0, 101, 10))
    assert (c["n_seeds"] == 2).all()
    want = FINAL["anil"] * (1 - math.exp(-50 / 20.0)) + 0.5  # mean of seeds 0 and 1
    assert c.set_index("iteration").loc[50, "val_acc"] == pytest.approx(want)
    assert c.set_index("iteration").loc[50, "train_seconds"] == pytest.approx(50 * 0.1)
    # the oom cell has no curve
    assert drawn[(drawn["setting"] == "glyphs 5w5s") & (drawn["variant"] == "maml K=20")].empty


def test_build_report_writes_files(results: Path, tmp_path: Path) -> None:
    rep = build_report(results, tmp_path / "rep", formats=("md", "tex", "csv"))
    names = {p.name for p in rep.files}
    for stem in ("accuracy", "memory", "memory_reduction", "time_to_accuracy", "time_per_iter"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    assert {"memory.png", "memory.svg", "val_vs_time.png", "val_vs_time.svg", "report.md"} <= names
    assert all(p.exists() and p.stat().st_size > 0 for p in rep.files)
    assert any("memcomp 0.0.9" in h for h in rep.header)
    assert r"$\pm$" in (tmp_path / "rep" / "accuracy.tex").read_text()
    console = Console(record=True, width=200)
    print_report(rep, console)
    text = console.export_text()
    assert "Test accuracy" in text and "[2 seeds]" in text and "OOM" in text


def test_build_report_old_results_and_missing_parts(results: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    runs = pd.read_csv(results / "runs.csv")
    dropped = ["mem_source", "test_ci95", "cg_residual", "memcomp_version", "queries", "status"]
    runs.drop(columns=dropped).to_csv(old / "runs.csv", index=False)
    (old / "episodes.csv").write_text((results / "episodes.csv").read_text())
    rep = build_report(old, formats=("csv",))
    assert (old / "report" / "accuracy.csv").exists()
    assert not (old / "report" / "val_vs_time.png").exists()
    assert any("no validation curves" in n for n in rep.notes)
    assert any("unknown" in h for h in rep.header)
    assert "cg_residual" not in rep.table("time_per_iter").tidy.columns
    # Without memory numbers the memory outputs are skipped, not crashed on.
    runs.drop(columns=dropped + ["peak_mem_mb"]).to_csv(old / "runs.csv", index=False)
    rep = build_report(old, tmp_path / "old2", formats=("md",))
    assert any("no peak-memory data" in n for n in rep.notes)
    assert "memory" not in {t.name for t in rep.tables}
    assert not (tmp_path / "old2" / "memory.png").exists()
    assert (tmp_path / "old2" / "accuracy.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_report(empty).tables == []
    with pytest.raises(ValueError, match="unknown formats"):
        build_report(results, tmp_path / "x", formats=("html",))


def test_mixed_status_and_per_dataset_params(frames: dict[str, pd.DataFrame]) -> None:
    runs = frames["runs"].copy()
    bad = runs["cell_id"] == "glyphs-anil-5-1"
    runs.loc[bad, ["status", "test_acc"]] = ["diverged", np.nan]
    # inner_lr differs between datasets but not within one: not part of the variant label.
    runs["inner_lr"] = np.where(runs["dataset"] == "glyphs", 0.1, 0.05)
    runs["learner"] = runs["learner"].replace({"anil": "itd_bio"})
    t = accuracy_table(runs, frames["episodes"])
    data = t.data.set_index("variant")
    want = f"{test_acc('anil', 5, 0):.2f}"
    assert data.loc["itd_bio K=5", "glyphs 5w5s"].startswith(want + " ± ")
    assert data.loc["itd_bio K=5", "glyphs 5w5s"].endswith("[1/2 ok, DIVERGED]")
    # itd_bio is the paper's ITD-BiO: its paper bars appear beside it.
    _, drawn = plot_memory(runs)
    pap = drawn[drawn["source"] == "paper"]
    assert "paper ITD-BiO" in set(pap["series"]) and "paper ANIL" not in set(pap["series"])


def test_paper_reference_numbers(frames: dict[str, pd.DataFrame]) -> None:
    runs = frames["runs"].replace({"dataset": {"glyphs": "cifar_fs"}})
    t = paper_table(runs).data.set_index("paper_name")
    assert list(t.columns) == ["cifar_fs"]
    assert t.loc["Algorithm 1", "cifar_fs"] == "64.24 ± 1.41 / 832.4 s"
    assert t.loc["MAML", "cifar_fs"].endswith("not reached")
    assert paper_table(frames["runs"]).data.empty
    mini = paper.memory_panel_for(84, "conv4", 32, 5, 5, 5)
    assert mini is not None and mini.name.startswith("miniImageNet")
    assert paper.memory_panel_for(84, "conv4", 32, 5, 1, 15) is None
    # paper.md's derived reduction: 85.7% vs ITD-BiO at K=20 on mini/tiered.
    red = 100 * (1 - mini.value("mrml", 20) / mini.value("ITD-BiO", 20))
    assert red == pytest.approx(85.7, abs=0.05)
