"""Issue 13 (9): preflight estimates each cell's work and memory from its shapes and refuses,
with the estimate, what could never finish or fit; ``--no-size-check`` overrides."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok
import pytest
import yaml
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import load_suite
from memcomp.config.size import MAX_IMAGE_PASSES, cell_size, size_problems

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def suite(tmp_path: Path, **over: Any) -> Path:
    data: dict[str, Any] = {
        "name": "sizes",
        "device": "cpu",
        "datasets": [{"name": "glyphs"}],
        "settings": [{"ways": 5, "shots": 1, "queries": 15}],
        "backbones": [{"name": "conv4"}],
        "learners": [{"name": "mrml", "inner_steps": 5}],
    }
    for key, value in over.items():
        data[key] = value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


def test_estimate_counts_tasks_images_and_steps(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        train={"iterations": 10, "meta_batch": 3, "eval_every": 4, "val_episodes": 2},
        test={"episodes": 7},
        learners=[{"name": "mrml", "inner_steps": 5, "cg_steps": 20}],
    )
    (cell,) = load_suite(path).cells
    size = cell_size(cell)
    images, passes = 5 * 16, 1 + 5 + 20
    evals = math.ceil(10 / 4)
    assert size.image_passes == images * passes * (10 * 3 + evals * 2 + 7)
    task = images * 1 * 28 * 28 * 4  # glyphs: 1 x 28 x 28, float32
    assert size.device_bytes == 3 * task
    assert size.host_bytes == max(2 * task + 3 * task, 7 * task)


@pytest.mark.parametrize(
    ("learner", "train"),
    [
        ({"name": "mrml", "inner_steps": 100_000}, {}),
        ({"name": "mrml", "cg_steps": 100_000}, {}),
        ({"name": "maml"}, {"iterations": 10_000_000, "meta_batch": 100}),
    ],
)
def test_validate_refuses_work_that_cannot_finish(tmp_path: Path, learner, train) -> None:
    path = suite(tmp_path, learners=[learner], train=train)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    out = flat(res.output)
    assert f"{path}:" in out and "learners[0]:" in out and "image passes" in out
    assert f"more than the {MAX_IMAGE_PASSES:.0e} a run can finish" in out
    assert "--no-size-check" in out and "Traceback" not in res.output
    res = runner.invoke(app, ["validate", str(path), "--no-size-check"])
    assert res.exit_code == 0, res.output


def test_run_refuses_what_cannot_fit_in_memory(tmp_path: Path, monkeypatch: Any) -> None:
    """100,000 fixed test episodes of 9 images 64x64: at least 13.7 GiB of images."""
    monkeypatch.setattr("memcomp.exec.plan.host_memory_bytes", lambda: 4.0 * 2**30)
    path = suite(
        tmp_path,
        datasets=[{"name": "fake-tiny", "image_size": 64, "classes": 4, "per_class": 4}],
        settings=[{"ways": 3, "shots": 1, "queries": 2}],
        backbones=[{"name": "conv4", "hidden": 2}],
        train={"iterations": 1, "meta_batch": 1, "eval_every": 1, "val_episodes": 1},
        test={"episodes": 100_000},
        learners=[{"name": "fake-ok"}],
    )
    out = tmp_path / "results"
    res = runner.invoke(app, ["run", str(path), "--out", str(out), "--dry-run"])
    assert res.exit_code == 2, res.output
    text = flat(res.output)
    assert "holds at least 13.7 GiB of images" in text and "machine's 4.0 GiB of memory" in text
    assert "--no-size-check" in text and not out.exists()
    res = runner.invoke(app, ["validate", str(path)])  # the machine is the run's, not validate's
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["run", str(path), "--out", str(out), "--dry-run", "--no-size-check"])
    assert res.exit_code == 0, res.output


def test_gpu_memory_bounds_the_meta_batch(tmp_path: Path) -> None:
    path = suite(tmp_path, train={"meta_batch": 100_000, "iterations": 1})
    (cell,) = load_suite(path).cells
    [(_, msg)] = size_problems([cell], host_memory=1e15, device_memory=2.0**30, device_name="X")
    assert "one meta-batch alone needs 23.4 GiB, more than X's 1.0 GiB" in msg


def test_shipped_suites_pass_the_size_check() -> None:
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        cells = load_suite(path).cells
        assert size_problems(cells, host_memory=16 * 2**30) == [], path
