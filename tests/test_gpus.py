"""Local GPU pinning: each cell child sees one GPU (CUDA_VISIBLE_DEVICES), never two cells on a
GPU unless --cells-per-gpu says so, and then the rows say it. Checked on the CPU through the
environment each child really got (the test plugin logs it at every meta-step)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent / "cluster"))

from memcomp.config import expand, load_suite  # noqa: E402
from memcomp.exec.gpus import GpuSlots, gpu_problem, gpu_slots  # noqa: E402
from memcomp.exec.options import RunOptions  # noqa: E402
from memcomp.exec.schedule import run_cells  # noqa: E402
from memcomp.results.manifest import create_results_dir, new_results_dir  # noqa: E402


def test_slots_pin_least_busy_gpu_and_map_visible_ids() -> None:
    slots = gpu_slots([0, 1], 1, ["4", "5"])
    assert slots.capacity == 2
    a, b = slots.acquire(), slots.acquire()
    assert (a, b) == (0, 1) and slots.env(b) == {"CUDA_VISIBLE_DEVICES": "5"}
    with pytest.raises(RuntimeError):
        slots.acquire()
    slots.release(a)
    assert slots.acquire() == 0
    shared = GpuSlots([2], 3, ["0", "1", "2"])
    assert [shared.acquire() for _ in range(3)] == [2, 2, 2]
    assert shared.columns(2) == {"gpu": 2, "cells_per_gpu": 3, "gpu_shared": True}
    assert gpu_slots("all", 1, ["0", "1", "2"]).gpus == [0, 1, 2]


def test_gpu_problems_name_the_fix() -> None:
    assert "--device cpu" in gpu_problem("all", [])
    assert "valid: 0-1" in gpu_problem([0, 2], ["0", "1"])
    assert gpu_problem([1], ["0", "1"]) is None


def _cells(tmp_path: Path, seeds: int) -> list:
    data = {
        "name": "pinning", "seeds": list(range(seeds)), "device": "cpu",
        "datasets": [{"name": "fake-tiny"}], "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {"iterations": 3, "meta_batch": 2, "eval_every": 3, "val_episodes": 2},
        "test": {"episodes": 3}, "learners": [{"name": "fake-slow", "step_sleep": 0.3}],
    }  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    return expand(load_suite(tmp_path / "s.yaml"))


def _spans(log: Path) -> dict[int, tuple[str, float, float]]:
    """pid -> (CUDA_VISIBLE_DEVICES it saw, first and last meta-step time)."""
    out: dict[int, tuple[str, float, float]] = {}
    for line in log.read_text().splitlines():
        e = json.loads(line)
        cuda, t0, t1 = out.get(e["pid"], (e["cuda"], e["t"], e["t"]))
        assert cuda == e["cuda"]
        out[e["pid"]] = (cuda, min(t0, e["t"]), max(t1, e["t"]))
    return out


def _overlap(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


@pytest.mark.parametrize("per_gpu", [1, 2])
def test_children_get_their_gpu_and_rows_say_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_gpu: int
) -> None:
    import cluster_plugin  # noqa: F401
    import fake_learners  # noqa: F401

    monkeypatch.setenv("MEMCOMP_PLUGINS", "fake_learners,cluster_plugin")
    log = tmp_path / "steps.jsonl"
    monkeypatch.setenv("MEMCOMP_TEST_ENV_LOG", str(log))
    cells = _cells(tmp_path, 4)
    results = create_results_dir(new_results_dir(tmp_path / "out", "pinning"), {"suite": "pinning"})
    gpus = [0, 1] if per_gpu == 1 else [1]
    slots = gpu_slots(gpus, per_gpu, ["7", "9"])
    outcomes = run_cells(cells, results, torch.device("cpu"),
                         options=RunOptions(gpu_slots=slots, threads=1))  # fmt: skip
    assert all(o.ok for o in outcomes), [o.row.get("error") for o in outcomes]
    spans = _spans(log)
    assert len(spans) == 4  # one child per cell
    seen = sorted(s[0] for s in spans.values())
    rows = results.runs()
    if per_gpu == 1:
        assert seen == ["7", "7", "9", "9"]  # each child saw exactly its one GPU
        assert sorted(rows["gpu"]) == [0, 0, 1, 1] and not rows["gpu_shared"].any()
        same = [(a, b) for a in spans.values() for b in spans.values() if a < b and a[0] == b[0]]
        assert not any(_overlap(a, b) for a, b in same)  # never two cells on one GPU at once
        other = [(a, b) for a in spans.values() for b in spans.values() if a[0] < b[0]]
        assert any(_overlap(a, b) for a, b in other)  # both GPUs were busy at the same time
    else:
        assert seen == ["9"] * 4 and (rows["gpu"] == 1).all()
        assert rows["gpu_shared"].all() and (rows["cells_per_gpu"] == 2).all()
        pairs = [(a, b) for a in spans.values() for b in spans.values() if a < b]
        assert any(_overlap(a, b) for a, b in pairs)  # two cells shared the GPU
