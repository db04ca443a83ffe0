"""compare of big folders: the vectorised rules give the per-cell rules' verdicts, values and
test texts for every cell; the terminal, page and JUnit stay bounded (issue 20)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.compare import compare_results, compare_results_per_cell
from memcomp.report.compare_html import INLINE_ROWS
from memcomp.report.compare_output import JUNIT_ROWS, SHOW_ROWS


def _pair(tmp: Path, n: int) -> tuple[Path, Path]:
    """Two folders of ``n`` cells with every kind of change: memory, time and accuracy moves
    (some within noise), failures on either side, missing values, a zero base, another memory
    source, episodes and curves for some cells, renamed ids (matched by configuration) and
    cells on one side only."""
    rng = np.random.default_rng(3)
    i = np.arange(n)
    base = pd.DataFrame(
        {
            "cell_id": [f"c{k:05d}" for k in i], "learner": np.where(i % 3, "maml", "mrml"),
            "dataset": "glyphs", "ways": 5, "shots": 1, "queries": 5, "backbone": "conv4",
            "dataset.image_size": 28, "backbone.hidden": 8, "learner.inner_steps": 1 + i % 7,
            "seed": i // 7, "status": "ok", "test_acc": rng.uniform(40, 80, n),
            "test_ci95": rng.uniform(0.5, 2, n), "peak_mem_mb": rng.uniform(5, 50, n),
            "sec_per_iter": rng.uniform(0.05, 0.2, n), "train_seconds": 3.0, "iterations": 10,
            "mem_source": "cpu-estimate",
        }
    )  # fmt: skip
    new = base.copy()
    new["test_acc"] += rng.normal(0, 2, n)
    new["peak_mem_mb"] *= rng.choice([0.9, 0.99, 1.0, 1.02, 1.2], n)
    new["sec_per_iter"] *= rng.choice([0.8, 0.95, 1.0, 1.05, 1.3], n)
    base.loc[i % 11 == 0, "status"] = "error"
    new.loc[i % 13 == 0, "status"] = "oom"
    base.loc[i % 17 == 0, "peak_mem_mb"] = np.nan
    new.loc[i % 19 == 0, "sec_per_iter"] = np.nan
    base.loc[i % 23 == 0, "peak_mem_mb"] = 0.0
    base.loc[i % 23 == 0, "sec_per_iter"] = 0.0
    new.loc[i % 29 == 0, "mem_source"] = "cuda"
    new.loc[i % 31 == 0, "test_ci95"] = np.nan
    new.loc[i % 37 == 0, "cell_id"] = [f"r{k}" for k in range((i % 37 == 0).sum())]
    new = new[i % 41 != 5]  # cells only in base
    detail = base["cell_id"].iloc[: n // 10]
    detail_n = len(detail)
    eps = pd.DataFrame(
        {"cell_id": np.repeat(detail, 10), "episode": np.tile(range(10), detail_n),
         "acc": rng.uniform(30, 90, 10 * detail_n)}
    )  # fmt: skip
    seconds = np.tile([1.0, 2.0, 3.0, 4.0, 5.0], detail_n) * rng.uniform(0.8, 1.2, 5 * detail_n)
    cur = pd.DataFrame(
        {"cell_id": np.repeat(detail, 5), "iteration": np.tile([2, 4, 6, 8, 10], detail_n),
         "train_seconds": seconds, "val_acc": rng.uniform(30, 90, 5 * detail_n), "val_ci95": 1.0}
    )  # fmt: skip
    folders = []
    for name, runs in (("base", base), ("new", new)):
        d = tmp / name
        d.mkdir()
        runs.to_csv(d / "runs.csv", index=False)
        eps[eps["cell_id"].isin(runs["cell_id"])].to_csv(d / "episodes.csv", index=False)
        cur[cur["cell_id"].isin(runs["cell_id"])].to_csv(d / "curves.csv", index=False)
        folders.append(d)
    return folders[0], folders[1]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def test_vectorised_compare_equals_the_per_cell_rules(tmp_path: Path) -> None:
    base, new = _pair(tmp_path, 600)
    got, want = compare_results(base, new).changes, compare_results_per_cell(base, new)
    assert len(got) == len(want) > 2000
    verdicts = {c.verdict for c in want}
    assert {"regression", "improvement", "within noise", "n/a"} <= verdicts  # every kind
    assert {c.metric for c in want} == {
        "status", "accuracy", "peak_mem_mb", "sec_per_iter", "time_to_accuracy"
    }  # fmt: skip
    for g, w in zip(got, want, strict=True):
        for field in ("cell", "metric", "base", "new", "change", "verdict", "test", "p_value",
                      "cell_id"):  # fmt: skip
            assert _same(getattr(g, field), getattr(w, field)), (field, g, w)


def test_big_comparison_prints_regressions_first_and_writes_every_row(tmp_path: Path) -> None:
    base, new = _pair(tmp_path, 2000)
    cmp = compare_results(base, new)
    assert len(cmp.table) > max(SHOW_ROWS, INLINE_ROWS, JUNIT_ROWS)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["compare", str(base), str(new), "--csv", str(out / "all.csv"), "--html",
              str(out / "cmp.html"), "--junit", str(out / "j.xml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"first {SHOW_ROWS} of {len(cmp.table)} rows" in " ".join(res.output.split())
    full = pd.read_csv(out / "all.csv")
    assert len(full) == len(cmp.table)
    assert (full["verdict"] == "regression").sum() == cmp.n_regressions > 0
    page = (out / "cmp.html").read_text()
    changes = page.split('id="table-compare"', 1)[1].split("</table>", 1)[0]
    assert changes.count("<tr>") == INLINE_ROWS + 1
    assert 'href="./cmp.csv"' in page and len(pd.read_csv(out / "cmp.csv")) == len(cmp.table)
    # regressions come first in the page: as many as fit are shown
    shown = min(INLINE_ROWS, cmp.n_regressions)
    assert changes.count(">regression<") == shown
    suite = ET.parse(out / "j.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("failures")) == cmp.n_regressions
    assert len(suite.findall("testcase/failure")) == cmp.n_regressions
    assert len(suite.findall("testcase")) < cmp.n_regressions + 30  # the rest: one per metric


def test_small_comparison_prints_every_row(tmp_path: Path) -> None:
    base, new = _pair(tmp_path, 40)
    cmp = compare_results(base, new)
    assert len(cmp.table) <= SHOW_ROWS
    res = CliRunner().invoke(app, ["compare", str(base), str(new)])
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "rows per metric and verdict" not in out
    assert "more rows" not in out and f"first {SHOW_ROWS}" not in out
