"""Shared by the cluster tests: skip reasons, the tiny suite, running a scenario in a netns."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_suite import fake_tiny_suite
from netns import netns_command, netns_problem

HERE = Path(__file__).parent
REPO = HERE.parent.parent
PLUGINS = "fake_learners,cluster_plugin"


def require(*modules: str) -> None:
    """Skip (with the reason) unless a private netns can be made and ``modules`` import."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'memcomp[cluster]'")
    why = netns_problem()
    if why:
        pytest.skip(why)


def cluster_env(**extra: str) -> dict[str, str]:
    """Environment for cluster processes: this checkout and the test plugins importable."""
    path = [str(REPO), str(REPO / "tests"), str(HERE)]
    env = {**os.environ, "MEMCOMP_PLUGINS": PLUGINS, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(path), "MPLBACKEND": "Agg", **extra}  # fmt: skip
    return env


def tiny_suite(path: Path, name: str = "cluster-tiny", seeds: int = 4, **train: Any) -> Path:
    data = fake_tiny_suite([{"name": "fake-slow", "step_sleep": 0.4}], name=name,
                           seeds=range(seeds), train={"checkpoint_every": 2, **train})  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    return path


def run_scenario(
    script: str, args: list[str], env: dict[str, str], timeout: float, private_dirs=()
) -> dict:
    """Run ``script`` in a new private network namespace; its ``SCENARIO {json}`` line."""
    proc = subprocess.run(
        netns_command([sys.executable, str(HERE / script), *args], tuple(private_dirs)),
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SCENARIO ")]
    tails = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0 and lines, f"scenario failed:\n{tails}"
    return json.loads(lines[-1][len("SCENARIO ") :])


def local_run(suite: Path, out: Path, env: dict[str, str]) -> Path:
    """The same suite run locally (the reference table)."""
    proc = subprocess.run(
        [sys.executable, "-m", "memcomp", "run", str(suite), "--out", str(out), "--threads", "1",
         "--jobs", "2"],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next(out.glob("*/*/runs.csv")).parent
