"""Faults during a run or while reading results (issue 13): full disk, corrupt results files,
two runs in the same second, resuming another version's folder, orphaned cell children."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and the fake learners
import pytest
import yaml
from helpers_suite import fake_tiny_suite
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.results.manifest import create_results_dir, new_results_dir
from memcomp.results.store import ResultsDir

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
runner = CliRunner()


def suite_dict(learners: list[dict[str, Any]], name: str = "faults") -> dict[str, Any]:
    return fake_tiny_suite(learners, name=name, episodes=3,
                           train={"iterations": 2, "val_episodes": 2})  # fmt: skip


def write_suite(path: Path, learners: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(suite_dict(learners)))
    return path


def squash(text: str) -> str:
    return "".join(text.split())


def run(*args: str) -> Any:
    return runner.invoke(app, ["run", *args, "--isolation", "inline"])


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights); CI runs it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to mount tmpfs")
def test_disk_full_stops_cleanly_keeps_finished_cells_and_prints_resume(
    tmp_path: Path, monkeypatch: Any
) -> None:
    suite = write_suite(
        tmp_path / "s.yaml",
        [{"name": "fake-ok"}, {"name": "fake-fill-disk"}, {"name": "fake-ok", "inner_lr": 0.3}],
    )
    with tmpfs(tmp_path / "disk") as disk:
        monkeypatch.setenv("MEMCOMP_TEST_FILL", str(disk / "filler"))
        res = run(str(suite), "--out", str(disk))
        out = squash(res.output)  # rich wraps long paths anywhere
        assert res.exit_code == 1, res.output
        assert "Traceback" not in res.output and "Errno28" in out
        (folder,) = (disk / "faults").iterdir()
        assert squash(f"no space left on device at {folder}") in out
        assert squash(f"resume with: memcomp run {suite} --resume {folder}") in out
        runs = ResultsDir(folder).runs()
        assert list(runs["status"]) == ["ok"] and runs["learner"].item() == "fake-ok"
        assert not list(folder.glob(".*.tmp")) and not list(folder.glob("**/.*.tmp"))
        json.loads((folder / "manifest.json").read_text())  # whole, valid
        (disk / "filler").unlink()
        monkeypatch.delenv("MEMCOMP_TEST_FILL")
        res = run(str(suite), "--resume", str(folder))
        assert res.exit_code == 0, res.output
        assert sorted(ResultsDir(folder).runs()["status"]) == ["ok", "ok", "ok"]


def corrupt_folder(tmp_path: Path, suite_name: str = "faults") -> Path:
    d = tmp_path / "out" / suite_name / "20260101-000000"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"suite": suite_name, "cells": {}}))
    (d / "runs.csv").write_text('cell_id,status,test_acc\na,ok,50\nb,ok,1,2,3\nc,"ok,4\n')
    return d


def test_resume_on_corrupt_runs_csv_exits_2_naming_the_file(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", [{"name": "fake-ok"}])
    d = corrupt_folder(tmp_path)
    res = run(str(suite), "--resume", str(d))
    text = squash(res.output)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "ParserError" not in res.output
    assert squash(f"--resume: {d / 'runs.csv'}: not a readable CSV table") in text


def test_report_on_corrupt_runs_csv_exits_2_naming_the_file(tmp_path: Path) -> None:
    d = corrupt_folder(tmp_path)
    res = runner.invoke(app, ["report", str(d), "--out", str(tmp_path / "rep")])
    text = squash(res.output)
    assert res.exit_code == 2, res.output
    assert squash(f"{d / 'runs.csv'}: not a readable CSV table") in text
    assert "Traceback" not in text
    (d / "runs.csv").write_bytes(b"cell_id,status\n\xff\xfe,ok\n")  # not UTF-8
    res = runner.invoke(app, ["report", str(d), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and squash("runs.csv: not a readable CSV table") in squash(res.output)


def test_bad_manifest_alone_does_not_block_the_report(tmp_path: Path) -> None:
    d = tmp_path / "legacy"
    d.mkdir()
    for name in ("runs.csv", "curves.csv", "episodes.csv"):
        (d / name).write_bytes((TESTS / "data" / "results-schema1" / name).read_bytes())
    (d / "manifest.json").write_text('{"suite": "legacy", "cells": {')  # truncated
    res = runner.invoke(app, ["report", str(d), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert squash("manifest.json: not valid JSON") in squash(res.output)
    assert (tmp_path / "rep" / "accuracy.md").exists()


def _create(root: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        results = create_results_dir(new_results_dir(Path(root), "same"), {"suite": "same"})
        out.put(str(results.path))
    except BaseException as e:  # noqa: BLE001 - report the failure to the parent
        out.put(f"ERROR {type(e).__name__}: {e}")


def test_two_runs_creating_a_folder_in_the_same_second(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    n = 4
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_create, args=(str(tmp_path), barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert not [g for g in got if g.startswith("ERROR")], got
    assert len(set(got)) == n
    for g in got:
        assert json.loads((Path(g) / "manifest.json").read_text()) == {"suite": "same"}
    assert not list((tmp_path / "same").glob(".*"))  # no temporary folders left


def test_resuming_another_versions_folder_says_so_and_records_it(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", [{"name": "fake-ok"}])
    assert run(str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    (d,) = (tmp_path / "out" / "faults").iterdir()
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["memcomp_version"] = "0.0.1"
    del manifest["results_schema"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = run(str(suite), "--resume", str(d))
    text = squash(res.output)
    assert res.exit_code == 0, res.output
    assert squash("written by memcomp 0.0.1, resuming with") in text
    assert squash("results schema 1 -> 2") in text
    session = json.loads((d / "manifest.json").read_text())["resumes"][-1]
    assert "written by memcomp 0.0.1" in session["version_note"]


def test_cell_child_stops_promptly_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent that is SIGKILLed while its child loads data: the child exits within a second."""
    pid_file = tmp_path / "child.pid"
    script = f"""
import os, subprocess, sys, time
env = dict(os.environ, MEMCOMP_PARENT_PID=str(os.getpid()))
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; sys.argv=['x']; "
    "from memcomp.exec import child as c; import os; "
    "c._die_with_parent(int(os.environ['MEMCOMP_PARENT_PID'])); time.sleep(60)"],
    env=env, start_new_session=True)
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    time.sleep(0.5)  # the child is up, sleeping (no progress messages)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    t0 = time.monotonic()
    while _alive(child) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not _alive(child), "the orphaned cell child is still running"
    assert time.monotonic() - t0 < 2.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped by its new parent yet) counts as stopped
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    return True
