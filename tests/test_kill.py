"""Issue 13: ``kill -9`` at a random moment of ``report``, of ``check --update`` and of a run on a
nearly full disk leaves valid files (the target whole, old or new; only hidden temporaries
besides, which the next command removes), like the SIGKILL-and-resume test of test_resume.py.

Each child runs through a small wrapper that slows ``os.fsync`` down (``SLOW_FSYNC`` seconds), so
that the moments between writing a temporary file and renaming it, the ones a kill could spoil,
last long enough for the kill to land in them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_faults import tmpfs
from typer.testing import CliRunner

from memcomp.budgets import load_budgets
from memcomp.cli import app
from memcomp.results.store import ResultsDir

TESTS = Path(__file__).parent
WRAPPER = """\
import os, sys, time
_fsync = os.fsync
def _slow(fd):
    time.sleep(float(os.environ.get("SLOW_FSYNC", "0")))
    _fsync(fd)
os.fsync = _slow
import fake_learners
from memcomp.cli import app
sys.argv = ["memcomp", *sys.argv[1:]]
app()
"""
SUITE = {
    "name": "killed",
    "seeds": [0],
    "device": "cpu",
    "datasets": [{"name": "fake-tiny"}],
    "settings": [{"ways": 3, "shots": 1, "queries": 2}],
    "backbones": [{"name": "conv4", "hidden": 4}],
    "train": {"iterations": 4, "meta_batch": 1, "eval_every": 2, "val_episodes": 2,
              "checkpoint_every": 1},
    "test": {"episodes": 3},
    "learners": [{"name": "fake-ok"}, {"name": "fake-ok", "inner_lr": 0.2}],
}  # fmt: skip
BUDGETS = """\
# budgets of the kill test
source: cpu-estimate
defaults:
  dataset: {name: fake-tiny}
  backbone: {name: conv4, hidden: 4}
  setting: {ways: 3, shots: 1, queries: 2}
  meta_batch: 1
  iterations: 1
  tolerance: "+50%"
budgets:
  - {learner: {name: fake-ok}, baseline_mb: 1.0}   # flow style
  - learner: {name: fake-ok, inner_lr: 0.2}
    baseline_mb: 1.0
"""


def child(tmp_path: Path, args: list[str], slow: float) -> subprocess.Popen[bytes]:
    wrapper = tmp_path / "memcomp_slow.py"
    wrapper.write_text(WRAPPER)
    env = {**os.environ, "SLOW_FSYNC": str(slow), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env["MEMCOMP_PLUGINS"] = "fake_learners"
    return subprocess.Popen(
        [sys.executable, str(wrapper), *args], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay: float, timeout: float = 240
) -> bool:
    """``kill -9`` the child's group ``delay`` s after ``ready()``; False if it ended first."""
    end = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def temps(folder: Path) -> list[Path]:
    return list(folder.glob("**/.*.tmp"))


def check_report_files(out: Path, final: Path) -> None:
    """Every visible file a killed report left is whole: as the finished report writes it."""
    for f in out.iterdir():
        if f.name.startswith("."):
            continue
        if f.suffix == ".svg":
            ET.parse(f)  # whole XML (matplotlib puts a date in it: not byte-equal)
        elif f.suffix == ".png":
            with Image.open(f) as im:
                im.load()
            assert f.read_bytes() == (final / f.name).read_bytes(), f
        else:
            assert f.read_text() == (final / f.name).read_text(), f


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("kill-results")
    suite = tmp / "s.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "seeds": [0, 1]}))
    res = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(tmp / "out"), "--isolation", "inline"]
    )
    assert res.exit_code == 0, res.output
    (d,) = [p.parent for p in (tmp / "out").glob("*/*/manifest.json")]
    return d


@pytest.mark.slow
def test_kill_9_during_report_leaves_whole_files(tmp_path: Path, results: Path) -> None:
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, 1.5)
    out = tmp_path / "report"
    args = ["report", str(results), "--out", str(out), "--format", "md,tex,csv"]
    proc = child(tmp_path, args, slow=0.1)
    killed = kill_when(proc, lambda: out.exists() and bool(list(out.iterdir())), delay)
    print(f"seed {seed}: killed={killed} after {delay:.2f}s, temporaries {temps(out)}")
    left = {f.name for f in out.iterdir()} if out.exists() else set()
    final = tmp_path / "final"
    res = CliRunner().invoke(app, ["report", str(results), "--out", str(final), "--format",
                                   "md,tex,csv"])  # fmt: skip
    assert res.exit_code == 0, res.output
    if out.exists():
        check_report_files(out, final)
    res = CliRunner().invoke(app, ["report", str(results), "--out", str(out), "--format",
                                   "md,tex,csv"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not temps(out), f"seed {seed}: a report again removes the killed one's temporaries"
    assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in final.iterdir())
    assert left <= {f.name for f in out.iterdir()} | {n for n in left if n.startswith(".")}


def budgets_ok(path: Path, original: str) -> str:
    """The budget file is the original or a whole update; returns which."""
    text = path.read_text()
    if text == original:
        return "original"
    data = yaml.safe_load(text)
    assert text.startswith("# budgets of the kill test\n") and "# flow style" in text
    assert [b["baseline_mb"] for b in data["budgets"]] != [1.0, 1.0]
    load_budgets(path)  # valid
    return "updated"


@pytest.mark.slow
def test_kill_9_during_check_update_leaves_a_whole_budget_file(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BUDGETS)
    args = ["check", str(path), "--update", "--device", "cpu"]
    # 1. killed while the new file is written (between its temporary file and the rename)
    proc = child(tmp_path, args, slow=1.0)
    t0 = time.monotonic()
    killed = kill_when(proc, lambda: bool(temps(tmp_path)), 0.2)
    took = time.monotonic() - t0
    assert killed, proc.stderr.read().decode() if proc.stderr else ""
    assert budgets_ok(path, BUDGETS) == "original" and temps(tmp_path)
    # 2. killed at a random moment of the whole command
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, took + 0.5)
    proc = child(tmp_path, args, slow=0.5)
    killed = kill_when(proc, lambda: True, delay)
    print(f"seed {seed}: killed={killed} after {delay:.2f}s of {took:.2f}s")
    budgets_ok(path, BUDGETS)
    # 3. the next --update finishes and removes what the killed ones left
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert budgets_ok(path, BUDGETS) == "updated" and not temps(tmp_path)


def results_ok(out: Path) -> list[Path]:
    """Every results folder under ``out`` reads back whole (the temporaries are hidden)."""
    folders = [p.parent for p in out.glob("*/*/manifest.json")]
    for d in folders:
        json.loads((d / "manifest.json").read_text())
        rd = ResultsDir(d)
        for table in (rd.runs(), rd.curves(), rd.episodes()):
            assert isinstance(table, pd.DataFrame)
        assert set(rd.runs().get("status", [])) <= {"ok"}
    return folders


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to mount tmpfs")
def test_kill_9_of_a_run_on_a_nearly_full_disk_leaves_valid_results(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        free = rng.choice([8, 16, 24, 48]) * 1024  # bytes left for the run
        filler = disk / "filler"
        st = os.statvfs(disk)
        filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - free))
        out = disk / "out"
        proc = child(tmp_path, ["run", str(suite), "--out", str(out), "--isolation", "inline"],
                     slow=0.02)  # fmt: skip
        delay = rng.uniform(0.0, 2.0)
        killed = kill_when(proc, lambda: bool(list(out.glob("*/*/manifest.json"))), delay)
        rc = proc.returncode
        print(f"seed {seed}: {free} bytes free, killed={killed} ({delay:.2f}s), rc={rc}")
        assert killed or rc in (0, 1), proc.stderr.read().decode() if proc.stderr else ""
        folders = results_ok(out)
        filler.unlink()
        target = ["--resume", str(folders[0])] if folders else ["--out", str(out)]
        res = CliRunner().invoke(app, ["run", str(suite), *target, "--isolation", "inline"])
        assert res.exit_code == 0, f"seed {seed}: {res.output}"
        (d,) = results_ok(out)
        assert sorted(ResultsDir(d).runs()["status"]) == ["ok", "ok"]
        assert not temps(d), f"seed {seed}"
