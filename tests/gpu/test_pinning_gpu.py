"""Multi-GPU pinning with one GPU (memcomp.exec.gpus): ``memcomp run --device cuda --gpus 0``
runs each cell in a child that sees only GPU 0 through CUDA_VISIBLE_DEVICES, and the row says
``gpu=0``, not shared."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_gpus_0_pins_the_child_and_the_row_says_gpu_0(cuda, tmp_path):
    suite = {
        "name": "pinning-gpu", "seeds": [0, 1], "device": "cuda",
        "datasets": [{"name": "fake-tiny"}], "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {"iterations": 2, "meta_batch": 2, "eval_every": 2, "val_episodes": 2},
        "test": {"episodes": 2}, "learners": [{"name": "gpu-probe"}],
    }  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    log = tmp_path / "steps.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(
        MEMCOMP_PLUGINS="fake_learners,gpu_plugin",
        MEMCOMP_TEST_ENV_LOG=str(log),
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), str(ROOT / "tests"), str(HERE), env.get("PYTHONPATH", "")]
        ),  # fmt: skip
    )
    cmd = [sys.executable, "-m", "memcomp", "run", str(tmp_path / "s.yaml"), "--device", "cuda",
           "--gpus", "0", "--out", str(tmp_path / "out"), "--threads", "1"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["pid"] for e in seen} and os.getpid() not in {e["pid"] for e in seen}  # children
    assert {e["cuda_visible_devices"] for e in seen} == {"0"}
    assert {e["device_count"] for e in seen} == {1} and {e["weights_on"] for e in seen} == {
        "cuda:0"
    }
    [runs] = (tmp_path / "out").glob("pinning-gpu/*/runs.csv")
    rows = list(csv.DictReader(runs.open()))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    assert {r["gpu"] for r in rows} == {"0"} and {r["gpu_shared"] for r in rows} == {"False"}
    assert {r["device"] for r in rows} == {"cuda"} and {r["mem_source"] for r in rows} == {"cuda"}
