"""SLURM bookkeeping without a cluster: what an ended job becomes, and ``memcomp status``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok, used below
import pytest
import torch
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import Cell, Component, Setting, TestConfig, TrainConfig
from memcomp.exec.slurm_executor import JOBS_FILE, _finished, folder_status
from memcomp.results.store import ResultsDir


def cell(seed: int) -> Cell:
    return Cell(
        suite="s",
        dataset=Component("fake-tiny", {}),
        setting=Setting(ways=3, shots=1, queries=2),
        backbone=Component("conv4", {"hidden": 4}),
        learner=Component("fake-ok", {}),
        train=TrainConfig(iterations=2),
        test=TestConfig(episodes=3),
        seed=seed,
    )


def job(jid: str, folder: Path) -> SimpleNamespace:
    paths = SimpleNamespace(result_pickle=folder / f"{jid}_result.pkl")
    return SimpleNamespace(job_id=jid, paths=paths, result=lambda: 1 / 0)


def test_an_ended_job_without_a_row_becomes_a_cancelled_or_error_row(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path)
    c = cell(0)
    outcome, _ = _finished(c, torch.device("cpu"), job("7_1", tmp_path), "CANCELLED", rd)
    assert outcome.row["status"] == "cancelled" and "7_1 ended CANCELLED" in outcome.row["error"]
    outcome, _ = _finished(c, torch.device("cpu"), job("7_2", tmp_path), "NODE_FAIL", rd)
    assert outcome.row["status"] == "error"


def test_an_ended_job_that_wrote_its_ok_row_keeps_it(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path)
    c = cell(1)
    rd.append({"cell_id": c.id, "status": "ok", "test_acc": 55.0}, [], [50.0, 60.0])
    outcome, _ = _finished(c, torch.device("cpu"), job("7_3", tmp_path), "TIMEOUT", rd)
    assert outcome.ok and outcome.row["test_acc"] == 55.0 and outcome.episodes == [50.0, 60.0]


def test_status_without_slurm_reads_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no sacct/scontrol here
    assert shutil.which("sacct") is None
    cells = [cell(0), cell(1), cell(2)]
    rd = ResultsDir(tmp_path)
    rd.write_manifest({"suite": "s", "cells": {c.id: {} for c in cells}})
    rd.append({"cell_id": cells[0].id, "status": "ok", "label": "a"}, [], [])
    rd.append({"cell_id": cells[1].id, "status": "oom", "label": "b"}, [], [])
    (tmp_path / JOBS_FILE).write_text(json.dumps({cells[2].id: "9_2"}))
    states = {c["cell_id"]: c["state"] for c in folder_status(tmp_path)}
    assert states == {cells[0].id: "ok", cells[1].id: "oom", cells[2].id: "not started"}
    res = CliRunner().invoke(app, ["status", str(tmp_path)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "3 cells: 1 not started, 1 ok, 1 oom" in text
