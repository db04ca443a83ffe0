"""``--memory-limit`` on a real GPU (issue 17, point 1): the cap is applied to a bare ``cuda``
device, and a cell over it is a ``status=oom`` row, not an error. Skipped without CUDA.

The CPU side (torch.cuda mocked) is tests/test_memory_limit.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 2000


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=False)  # fmt: skip


def test_the_cap_applies_to_a_bare_cuda_device() -> None:
    """In a fresh process (the fraction is per process): 1.5 GB fits under 2000 MB, 2.5 GB not."""
    done = _python(f"""
import torch
from memcomp.exec.child import apply_memory_limit
from memcomp.measure.budget import cuda_budget
apply_memory_limit(torch.device("cuda"), {LIMIT_MB})
assert cuda_budget("cuda").bytes == {LIMIT_MB} * 2**20, cuda_budget("cuda")
a = torch.empty(1500 * 2**20, dtype=torch.uint8, device="cuda")
del a
try:
    torch.empty(2500 * 2**20, dtype=torch.uint8, device="cuda")
except torch.OutOfMemoryError:
    print("capped")
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "capped"


def suite(tmp_path: Path) -> Path:
    """The paper's miniImageNet shape: mrml sequential (~165 MB) within the cap; maml batched
    over 8 tasks (~8 GB) over it; maml with auto, which must choose a chunk inside it."""
    data = {"name": "synthetic", "image_size": 84, "channels": 3, "images_per_class": 10,
            "train_classes": 5, "val_classes": 5, "test_classes": 5}  # fmt: skip
    doc = {
        "name": "gpu-limit", "seeds": [0], "device": "cuda", "datasets": [data],
        "settings": [{"ways": 5, "shots": 5, "queries": 5}],
        "backbones": [{"name": "conv4", "hidden": 32}],
        "train": {"iterations": 2, "meta_batch": 8, "eval_every": 2, "val_episodes": 2},
        "test": {"episodes": 2},
        "learners": [
            {"name": "mrml", "inner_steps": 5, "cg_steps": 5, "execution": "sequential"},
            {"name": "maml", "inner_steps": 5, "inner_lr": 0.5, "execution": "batched"},
            {"name": "maml", "inner_steps": 5, "inner_lr": 0.5},
        ],
    }  # fmt: skip
    path = tmp_path / "limit.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_cell_over_the_limit_is_an_oom_row(tmp_path: Path) -> None:
    """The issue's command: every cell ended in ValueError; now the cap holds per cell."""
    cmd = [sys.executable, "-m", "memcomp", "run", str(suite(tmp_path)), "--device", "cuda",
           "--memory-limit", str(LIMIT_MB), "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=540, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # one cell did not finish ok: the oom
    (runs,) = (tmp_path / "out").glob("gpu-limit/*/runs.csv")
    rows = pd.read_csv(runs)
    assert "ValueError" not in " ".join(rows["error"].fillna("").astype(str))
    mrml, maml_batched, maml_auto = (rows.iloc[i] for i in range(3))
    assert mrml["status"] == "ok" and mrml["peak_mem_mb"] < LIMIT_MB
    assert maml_batched["status"] == "oom" and "out of memory" in maml_batched["error"].lower()
    assert maml_auto["status"] == "ok", maml_auto["error"]
    assert maml_auto["memory_budget_mb"] == LIMIT_MB
    assert "--memory-limit 2000 MB" in maml_auto["chunk_reason"]
    assert maml_auto["mem_baseline_mb"] + maml_auto["peak_mem_mb"] <= LIMIT_MB
