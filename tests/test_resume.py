"""Resume: skip finished cells, re-run changed ones, continue from checkpoints, survive kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and the failing learners
import pandas as pd
import pytest
import torch
import yaml
from helpers_suite import fake_tiny_suite
from typer.testing import CliRunner

import memcomp.engine.train
import memcomp.exec.inline
from memcomp.cli import app
from memcomp.cli.run import run_command
from memcomp.config.run_options import RunOptions
from memcomp.results.store import ResultsDir

TESTS = Path(__file__).parent
ACC_COLS = ["cell_id", "status", "test_acc", "test_ci95", "best_val_acc", "final_val_acc"]


def suite_dict(name: str = "resumable", **train: Any) -> dict[str, Any]:
    return fake_tiny_suite([{"name": "fake-ok"}], name=name, seeds=(0, 1), train=train)


def write_suite(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


class Result:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code, self.output = exit_code, " ".join(output.split())  # undo rich's wrapping


def invoke(*args: str) -> Result:
    torch.set_num_threads(1)
    res = CliRunner().invoke(app, ["run", *args, "--isolation", "inline"])
    return Result(res.exit_code, res.output)


def only_run(tmp_path: Path) -> Path:
    (d,) = [p.parent for p in (tmp_path / "out").glob("*/*/manifest.json")]
    return d


def acc_table(d: Path) -> pd.DataFrame:
    runs = ResultsDir(d).runs()
    return runs[ACC_COLS].sort_values("cell_id").reset_index(drop=True)


def test_resume_skips_done_cells_and_reruns_changed_ones(tmp_path: Path, monkeypatch: Any) -> None:
    suite = write_suite(tmp_path / "s.yaml", suite_dict())
    assert invoke(str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    d = only_run(tmp_path)
    first = acc_table(d)
    assert list(first["status"]) == ["ok", "ok"]
    ran: list[str] = []
    real = memcomp.exec.inline.run_cell

    def counting(cell: Any, *a: Any, **k: Any) -> Any:
        ran.append(cell.id)
        return real(cell, *a, **k)

    monkeypatch.setattr("memcomp.exec.inline.run_cell", counting)
    res = invoke(str(suite), "--resume", str(d))
    assert res.exit_code == 0, res.output
    assert ran == [] and "2 of 2 cells already done" in res.output
    changed = suite_dict()
    changed["seeds"] = [0, 7]  # seed 1 -> 7: a different cell
    write_suite(suite, changed)
    res = invoke(str(suite), "--resume", str(d.parent))  # a suite folder: its newest run
    assert res.exit_code == 0, res.output
    assert len(ran) == 1 and "1 of 2 cells already done" in res.output
    assert "1 rows of cells no longer in the suite are kept" in res.output
    runs = ResultsDir(d).runs()
    assert len(runs) == 3 and set(first["cell_id"]) < set(runs["cell_id"])
    pd.testing.assert_frame_equal(
        acc_table(d)[lambda t: t["cell_id"].isin(first["cell_id"])].reset_index(drop=True), first
    )
    man = ResultsDir(d).manifest()
    assert len(man["resumes"]) == 2 and len(man["cells"]) == 3


def test_failed_cells_are_rerun_on_resume(tmp_path: Path) -> None:
    data = suite_dict()
    data["learners"] = [{"name": "fake-ok"}, {"name": "fake-error", "fail_at": 3}]
    data["seeds"] = [0]
    suite = write_suite(tmp_path / "s.yaml", data)
    assert invoke(str(suite), "--out", str(tmp_path / "out")).exit_code == 1
    d = only_run(tmp_path)
    res = invoke(str(suite), "--resume", str(d))
    assert res.exit_code == 1 and "1 of 2 cells already done, running 1" in res.output
    assert sorted(ResultsDir(d).runs()["status"]) == ["error", "ok"]  # replaced, not duplicated


def test_another_suites_folder_is_refused(tmp_path: Path) -> None:
    a = write_suite(tmp_path / "a.yaml", suite_dict("suite-a"))
    b = write_suite(tmp_path / "b.yaml", suite_dict("suite-b"))
    assert invoke(str(a), "--out", str(tmp_path / "out")).exit_code == 0
    d = only_run(tmp_path)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    res = invoke(str(b), "--resume", str(d))
    assert res.exit_code == 2
    assert "holds results of suite 'suite-a', not 'suite-b'" in res.output
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    res = invoke(str(b), "--resume", str(stray))
    assert res.exit_code == 2 and "not a memcomp results folder" in res.output
    assert sorted(p.name for p in stray.iterdir()) == ["notes.txt"]


def test_ctrl_c_saves_done_cells_and_says_how_to_resume(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """Ctrl-C in the second cell: the first is saved, exit 130, the resume command is printed;
    with checkpoints the interrupted cell continues and ends equal to an uninterrupted run."""
    from rich.console import Console

    torch.set_num_threads(1)
    suite = write_suite(tmp_path / "s.yaml", suite_dict(iterations=8, checkpoint_every=3))
    calls = {"n": 0}
    real_step = memcomp.engine.train.meta_step

    def step(*a: Any) -> Any:
        calls["n"] += 1
        # cell 1: 3 memory-measurement steps + 8 training steps; cell 2: 3 + 7 -> Ctrl-C
        if calls["n"] == 11 + 3 + 7:
            raise KeyboardInterrupt
        return real_step(*a)

    monkeypatch.setattr(memcomp.engine.train, "meta_step", step)
    console = Console(width=200)
    inline = RunOptions(isolation="inline")
    code = run_command(suite, tmp_path / "out", inline, console)
    out = capsys.readouterr().out
    assert code == 130
    d = only_run(tmp_path)
    assert f"resume with: memcomp run {suite} --resume {d} --isolation=inline" in " ".join(
        out.split()
    )
    assert len(ResultsDir(d).runs()) == 1
    (ckpt,) = (d / "checkpoints").glob("*.pt")  # saved at iteration 6 of the second cell
    assert torch.load(ckpt, weights_only=True)["iteration"] == 6
    monkeypatch.setattr(memcomp.engine.train, "meta_step", real_step)
    code = run_command(suite, tmp_path / "out", inline, console, resume=d)
    assert code == 0
    runs = ResultsDir(d).runs().sort_values("cell_id")
    assert list(runs["resumed_from_iteration"].fillna(0)) in ([0, 6], [6, 0])
    assert not list((d / "checkpoints").glob("*.pt"))  # removed once the cell is saved
    ref = write_suite(tmp_path / "ref.yaml", suite_dict(iterations=8, checkpoint_every=3))
    assert run_command(ref, tmp_path / "ref", inline, console) == 0
    (ref_dir,) = [p.parent for p in (tmp_path / "ref").glob("*/*/manifest.json")]
    pd.testing.assert_frame_equal(acc_table(d), acc_table(ref_dir))
    ep = ResultsDir(d).episodes().sort_values(["cell_id", "episode"]).reset_index(drop=True)
    ep_ref = ResultsDir(ref_dir).episodes().sort_values(["cell_id", "episode"])
    pd.testing.assert_frame_equal(ep, ep_ref.reset_index(drop=True))


def _cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "memcomp", "run", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw,
    )  # fmt: skip


def _wait_for_folder(out: Path, proc: subprocess.Popen[bytes]) -> float:
    """Poll until the run's results folder exists (or the run ended); return the time."""
    while not list(out.glob("*/*/manifest.json")) and proc.poll() is None:
        time.sleep(0.02)
    return time.monotonic()


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """``kill -9`` of the whole run (process group) at a random moment, resume until done: the
    results table equals that of an uninterrupted run (same seeds, CPU, one thread)."""
    data = suite_dict(iterations=30, eval_every=5, checkpoint_every=4)
    data["seeds"] = [0, 1, 2]
    data["learners"] = [{"name": "fake-ok"}, {"name": "fake-ok", "inner_lr": 0.2}]
    suite = write_suite(tmp_path / "s.yaml", data)
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "MEMCOMP_PLUGINS": "fake_learners", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = path
    common = ["--device", "cpu", "--isolation", "inline"]
    t0 = time.monotonic()
    ref = _cli([str(suite), "--out", str(tmp_path / "ref"), *common], env)
    started = _wait_for_folder(tmp_path / "ref", ref) - t0
    assert ref.wait(timeout=120) == 0, ref.stderr.read().decode() if ref.stderr else ""
    work = time.monotonic() - t0 - started  # time spent on cells, after the folder appeared
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, work)
    out = tmp_path / "out"
    proc = _cli([str(suite), "--out", str(out), *common], env)
    _wait_for_folder(out, proc)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = [p.parent for p in out.glob("*/*/manifest.json")]
    saved = len(ResultsDir(killed[0]).runs()) if killed else 0
    ckpts = len(list(killed[0].glob("checkpoints/*.pt"))) if killed else 0
    print(f"seed {seed}: killed after {delay:.2f}s: {saved} rows, {ckpts} checkpoints")
    for _ in range(3):
        found = [p.parent for p in out.glob("*/*/manifest.json")]
        target = ["--resume", str(found[0])] if found else ["--out", str(out)]
        proc = _cli([str(suite), *target, *common], env)
        if proc.wait(timeout=120) == 0:
            break
    assert proc.returncode == 0, f"seed {seed}"
    assert len(list(out.glob("*/*/manifest.json"))) == 1, f"seed {seed}: one results folder"
    (d,) = [p.parent for p in out.glob("*/*/manifest.json")]
    (r,) = [p.parent for p in (tmp_path / "ref").glob("*/*/manifest.json")]
    pd.testing.assert_frame_equal(acc_table(d), acc_table(r), obj=f"runs (seed {seed})")
    assert len(acc_table(d)) == 6
    for name in ("episodes", "curves"):
        a, b = getattr(ResultsDir(d), name)(), getattr(ResultsDir(r), name)()
        keys = ["cell_id", "episode"] if name == "episodes" else ["cell_id", "iteration"]
        cols = keys + (["acc"] if name == "episodes" else ["val_acc", "val_ci95"])
        a, b = (x.sort_values(keys)[cols].reset_index(drop=True) for x in (a, b))
        pd.testing.assert_frame_equal(a, b, obj=f"{name} (seed {seed})")
    assert not list(d.glob(".*.tmp")) and not list(d.glob("checkpoints/*.pt"))
