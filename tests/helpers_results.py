"""Tiny real results folders for report and compare tests: ``memcomp run`` (inline) on the
fake-tiny dataset with the fake learners (a few iterations, seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and the fake learners
import torch
import yaml
from typer.testing import CliRunner

from memcomp.cli import app


def tiny_suite(name: str = "tiny", seeds: tuple[int, ...] = (0, 1), **extra: Any) -> dict:
    """fake-ok (several seeds), maml (records per-phase memory) and a cell that fails."""
    return {
        "name": name,
        "description": "tiny suite for report tests",
        "seeds": list(seeds),
        "device": "cpu",
        "datasets": [{"name": "fake-tiny"}],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {"iterations": 12, "meta_batch": 2, "eval_every": 1, "val_episodes": 3},
        "test": {"episodes": 12},
        "learners": [
            {"name": "fake-ok"},
            {"name": "maml", "inner_steps": 1, "inner_lr": 0.1},
            {"name": "fake-error", "fail_at": 3},
        ],
        **extra,
    }


def run_suite(out: Path, suite: dict) -> Path:
    """Run ``suite`` into ``out`` (inline) and return its results folder."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    torch.set_num_threads(1)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--isolation", "inline"])
    assert res.exit_code in (0, 1), res.output  # 1: a cell failed on purpose
    (folder,) = sorted((out / suite["name"]).glob("*/runs.csv"))[-1:]
    return folder.parent


_RUNS: dict[str, Path] = {}


def shared_run(factory: Any, key: str = "a") -> Path:
    """One tiny run per ``key`` for the whole test session (tests copy it before editing)."""
    if key not in _RUNS:
        _RUNS[key] = run_suite(factory.mktemp(f"tiny-{key}"), tiny_suite())
    return _RUNS[key]


_PAGES: dict[str, tuple[Path, str]] = {}


def shared_report(factory: Any) -> tuple[Path, str]:
    """``memcomp report`` of :func:`shared_run` into its own folder, once per session: the
    report.html path and what the command printed."""
    if "a" not in _PAGES:
        out = factory.mktemp("report")
        res = CliRunner().invoke(app, ["report", str(shared_run(factory)), "--out", str(out)])
        assert res.exit_code == 0, res.output
        _PAGES["a"] = (out / "report.html", res.output)
    return _PAGES["a"]
