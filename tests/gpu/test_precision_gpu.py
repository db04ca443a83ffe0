"""Precision on a real CUDA GPU (skipped without one): every learner trains in float32, tf32,
bf16 and float64 with the flags in force recorded; TF32 really changes a float32 product (the
flags are applied, not only recorded); ``memcomp diagnose``'s rounding rows including tf32;
bf16 cuts CUDA's peak memory.

Marker: engineer ``gpubench``'s tests/gpu/conftest.py registers ``gpu``; until then the skip
below is the whole gate.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from memcomp.config import expand, suite_from_dict
from memcomp.config.cells import Cell
from memcomp.config.settings import TrainConfig, planned_flags
from memcomp.engine import run_cell
from memcomp.learners import LEARNERS
from memcomp.measure.precision import PrecisionPlan, precision_flags, unsupported
from memcomp.verify.fixtures import contract_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


def ampere() -> bool:
    return torch.cuda.get_device_capability(0)[0] >= 8


def cell(learner: str, precision: str, params: dict[str, Any] | None = None, **kw: Any) -> Cell:
    """A tiny cell of ``learner`` (its contract's test_params unless ``params``)."""
    data = {"name": "synthetic", "image_size": kw.pop("image_size", 8), "channels": 1}
    data.update(train_classes=4, val_classes=3, test_classes=3, images_per_class=6)
    suite = {
        "name": "precision-gpu",
        "device": "cuda",
        "datasets": [data],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": kw.pop("hidden", 3), "blocks": 2}],
        "train": {"iterations": 2, "meta_batch": 2, "eval_every": 2, "val_episodes": 1,
                  "precision": precision, **kw},
        "test": {"episodes": 1},
        "learners": [{"name": learner, **(params or contract_params(learner))}],
    }  # fmt: skip
    (c,) = expand(suite_from_dict(suite))
    return c


@pytest.mark.parametrize("precision", ["float32", "tf32", "bf16", "float64"])
@pytest.mark.parametrize("learner", sorted(LEARNERS.names()))
def test_every_learner_trains_in_each_precision_on_cuda(learner: str, precision: str) -> None:
    row = run_cell(cell(learner, precision), CUDA).row
    why = unsupported(precision, CUDA)
    if why is not None:  # tf32 / bf16 below compute capability 8.0
        assert row["status"] == "skipped" and row["error"] == why
        return
    assert row["status"] == "ok", row.get("error")
    assert math.isfinite(row["test_acc"]) and row["mem_source"] == "cuda"
    assert row["precision"] == precision
    tf32 = precision == "tf32"
    assert (row["matmul_tf32"], row["cudnn_tf32"]) == (tf32, tf32)
    assert row["float32_matmul_precision"] == ("high" if tf32 else "highest")
    assert row["autocast_dtype"] == ("bfloat16" if precision == "bf16" else "none")


@pytest.mark.skipif(not torch.cuda.is_available() or not ampere(), reason="needs TF32 (sm_80+)")
def test_tf32_flags_change_float32_products() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(1024, 1024, device=CUDA, generator=gen, dtype=torch.float64)
    b = torch.randn(1024, 1024, device=CUDA, generator=gen, dtype=torch.float64)
    x = torch.randn(16, 32, 32, 32, device=CUDA, generator=gen, dtype=torch.float64)
    w = torch.randn(64, 32, 3, 3, device=CUDA, generator=gen, dtype=torch.float64)
    want_mm, want_conv = a @ b, torch.nn.functional.conv2d(x, w, padding=1)
    errors = {}
    for p in ("float32", "tf32"):
        with precision_flags(PrecisionPlan.from_flags(planned_flags(TrainConfig(precision=p)))):
            mm = (a.float() @ b.float()).double()
            conv = torch.nn.functional.conv2d(x.float(), w.float(), padding=1).double()
        errors[p] = (
            float((mm - want_mm).abs().max() / want_mm.abs().max()),
            float((conv - want_conv).abs().max() / want_conv.abs().max()),
        )
    # TF32 keeps 10 mantissa bits against float32's 23: errors some 100x larger
    assert errors["tf32"][0] > 30 * errors["float32"][0]
    assert errors["tf32"][1] > 30 * errors["float32"][1]


def test_rounding_rows_on_cuda_include_tf32() -> None:
    from memcomp.diagnose import Config, Problem
    from memcomp.diagnose.rounding import run_rounding

    small = Problem(ways=3, shots=2, queries=2, hidden=8, tasks=2)
    configs = [Config("maml", {"inner_steps": 5, "inner_lr": 0.1}, "precision")]
    rows = {r["precision"]: r for r in run_rounding(configs, small, device="cuda", repeats=1)}
    assert rows["float64"]["rounding_error"] == 0 and rows["float64"]["device"] == "cuda"
    assert 0 < rows["float32"]["rounding_error"] < 1e-3
    assert rows["bf16"]["rounding_error"] > rows["float32"]["rounding_error"]
    if ampere():
        assert rows["tf32"]["status"] == "ok"
        assert rows["tf32"]["rounding_error"] > rows["float32"]["rounding_error"]
    else:
        assert "compute capability" in rows["tf32"]["status"]
    assert rows["float32"]["peak_mem_mb"] > 0  # torch.cuda.max_memory_allocated


@pytest.mark.skipif(not torch.cuda.is_available() or not ampere(), reason="needs bf16 (sm_80+)")
def test_bf16_cuts_cuda_peak_memory_of_maml() -> None:
    params = {"inner_steps": 3, "inner_lr": 0.1, "execution": "sequential"}
    peaks = {}
    for p in ("float32", "bf16"):
        row = run_cell(cell("maml", p, params, image_size=32, hidden=32), CUDA).row
        assert row["status"] == "ok", row.get("error")
        peaks[p] = row["peak_mem_mb"]
    assert peaks["bf16"] < 0.8 * peaks["float32"]
