"""``memcomp merge``: folders of one suite become one; duplicates resolved and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.results.store import ResultsDir


def folder(path: Path, suite: str, rows: list[dict[str, Any]], started: str) -> Path:
    """A results folder holding ``rows`` (each with a 2-point curve and 3 episodes)."""
    rd = ResultsDir(path)
    path.mkdir(parents=True)
    cells = {r["cell_id"]: {"learner": "maml"} for r in rows}
    rd.write_manifest({"suite": suite, "suite_text": f"name: {suite}\n", "started_at": started,
                       "device_name": path.name, "cells": cells})  # fmt: skip
    for r in rows:
        cid = r["cell_id"]
        acc = float(r.get("test_acc", 50.0))
        curve = [{"cell_id": cid, "iteration": i, "train_seconds": i, "val_acc": acc,
                  "val_ci95": 1.0} for i in (1, 2)]  # fmt: skip
        row = {"suite": suite, "label": f"maml {cid}", "learner": "maml", **r}
        rd.append(row, curve, [acc] * 3)
        if r.get("status") != "ok":
            (path / "logs").mkdir(exist_ok=True)
            (path / "logs" / f"{cid}.log").write_text(f"log of {cid} in {path.name}")
    return path


def merge(*args: str) -> Any:
    return CliRunner().invoke(app, ["merge", *args])


def test_disjoint_folders_merge_into_one(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", "s", [{"cell_id": "c1", "status": "ok", "test_acc": 60.0}], "t1")
    b = folder(tmp_path / "b", "s", [{"cell_id": "c2", "status": "ok", "test_acc": 70.0},
                                     {"cell_id": "c3", "status": "oom"}], "t2")  # fmt: skip
    res = merge(str(a), str(b), "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    assert "merged 3 cells" in res.output and "duplicate" not in res.output
    out = ResultsDir(tmp_path / "c")
    runs = out.runs().set_index("cell_id")
    assert runs.loc["c1", "test_acc"] == 60.0 and runs.loc["c3", "status"] == "oom"
    assert len(out.curves()) == 6 and len(out.episodes()) == 9
    assert (tmp_path / "c" / "logs" / "c3.log").read_text() == "log of c3 in b"
    m = out.manifest()
    assert set(m["cells"]) == {"c1", "c2", "c3"} and m["suite"] == "s"
    assert [s["path"] for s in m["merged_from"]] == [str(a), str(b)]
    assert [s["rows_kept"] for s in m["merged_from"]] == [1, 2]
    assert [s["started_at"] for s in m["merged_from"]] == ["t1", "t2"]


def test_a_cell_that_ran_twice_keeps_the_finished_row(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", "s", [{"cell_id": "c1", "status": "ok", "test_acc": 61.0,
                                      "finished_at": "2026-01-01T00:00:00"}], "t1")  # fmt: skip
    b = folder(tmp_path / "b", "s", [{"cell_id": "c1", "status": "error", "test_acc": 0.0,
                                      "finished_at": "2026-01-02T00:00:00"}], "t2")  # fmt: skip
    res = merge(str(b), str(a), "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "duplicate: cell c1" in text and "kept the finished one" in text
    assert f"from {a}" in text
    out = ResultsDir(tmp_path / "c")
    runs = out.runs()
    assert list(runs["cell_id"]) == ["c1"] and runs["status"].iloc[0] == "ok"
    assert runs["test_acc"].iloc[0] == 61.0
    # the curve and episodes come from the folder whose row was kept, once
    assert list(out.curves()["val_acc"]) == [61.0, 61.0]
    assert list(out.episodes()["acc"]) == [61.0] * 3
    assert not (tmp_path / "c" / "logs" / "c1.log").exists()  # the error's log was dropped


def test_two_finished_runs_keep_the_later(tmp_path: Path) -> None:
    rows = lambda acc, t: [{"cell_id": "c1", "status": "ok", "test_acc": acc,  # noqa: E731
                            "finished_at": t}]  # fmt: skip
    a = folder(tmp_path / "a", "s", rows(50.0, "2026-01-02T00:00:00"), "t1")
    b = folder(tmp_path / "b", "s", rows(40.0, "2026-01-01T00:00:00"), "t2")
    res = merge(str(a), str(b), "--out", str(tmp_path / "c"))
    assert res.exit_code == 0 and "kept the later one" in " ".join(res.output.split())
    assert ResultsDir(tmp_path / "c").runs()["test_acc"].tolist() == [50.0]


def test_refuses_different_suites_existing_out_and_non_results(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", "s1", [{"cell_id": "c1", "status": "ok"}], "t1")
    b = folder(tmp_path / "b", "s2", [{"cell_id": "c2", "status": "ok"}], "t2")
    res = merge(str(a), str(b), "--out", str(tmp_path / "c"))
    assert res.exit_code == 2 and "different suites" in res.output
    assert not (tmp_path / "c").exists()
    (tmp_path / "c").mkdir()
    c = folder(tmp_path / "d", "s1", [{"cell_id": "c3", "status": "ok"}], "t3")
    res = merge(str(a), str(c), "--out", str(tmp_path / "c"))
    assert res.exit_code == 2 and "exists" in res.output
    (tmp_path / "plain").mkdir()
    res = merge(str(a), str(tmp_path / "plain"), "--out", str(tmp_path / "e"))
    assert res.exit_code == 2 and "not a memcomp results folder" in res.output
    res = merge(str(a), str(a), "--out", str(tmp_path / "e"))
    assert res.exit_code == 2 and "given twice" in res.output


def test_merged_folder_is_readable_by_report(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", "s", [{"cell_id": "c1", "status": "ok", "test_acc": 60.0}], "t1")
    b = folder(tmp_path / "b", "s", [{"cell_id": "c2", "status": "ok", "test_acc": 70.0}], "t2")
    assert merge(str(a), str(b), "--out", str(tmp_path / "c")).exit_code == 0
    runs = pd.read_csv(tmp_path / "c" / "runs.csv")
    assert sorted(runs["cell_id"]) == ["c1", "c2"]
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["suite"] == "s"
