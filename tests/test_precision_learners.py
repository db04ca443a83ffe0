"""Every registered learner (built-ins and plugins, through the contract's ``test_params``) trains
in float32, bf16 and float64 on the CPU: a finite loss, and the row records the precision that
ran (weights' dtype and autocast dtype as observed inside the meta-step). R2D2's ridge solve
accepts bf16 features (torch has no low-precision LU)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from memcomp.config import expand, suite_from_dict
from memcomp.config.cells import Cell
from memcomp.engine import run_cell
from memcomp.engine.setup import CellSetup
from memcomp.learners import LEARNERS
from memcomp.verify.fixtures import contract_params


def tiny_cell(learner: str, precision: str, **train: Any) -> Cell:
    """One cell of ``learner`` at its contract's tiny hyper-parameters: 8x8 synthetic images,
    3-way 1-shot, a 2-block Conv4 of 3 filters, one meta-iteration, one val and test episode."""
    params = contract_params(learner)
    suite = {
        "name": "precision-learners",
        "device": "cpu",
        "datasets": [{"name": "synthetic", "image_size": 8, "channels": 1, "train_classes": 4,
                      "val_classes": 3, "test_classes": 3, "images_per_class": 3}],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 3, "blocks": 2}],
        "train": {"iterations": 1, "meta_batch": 2, "eval_every": 1, "val_episodes": 1,
                  "precision": precision, **train},
        "test": {"episodes": 1},
        "learners": [{"name": learner, **params}],
    }  # fmt: skip
    (cell,) = expand(suite_from_dict(suite))
    return cell


class Probe:
    """Wraps a learner's ``meta_backward`` (through ``run_cell``'s ``on_setup``) and records
    what was in force inside it: weights' dtype, autocast state, the meta-gradients' dtype."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, setup: CellSetup) -> None:
        learner, inner = setup.learner, setup.learner.meta_backward
        seen = self.seen

        def meta_backward(tasks: Any) -> Any:
            stats = inner(tasks)
            grads = {p.grad.dtype for p in learner.meta_parameters() if p.grad is not None}
            seen.append(
                {
                    "weights": {p.dtype for p in learner.parameters()},
                    "grads": grads,
                    "autocast": torch.is_autocast_enabled("cpu"),
                    "autocast_dtype": torch.get_autocast_dtype("cpu"),
                    "loss": float(stats.loss),
                }
            )
            return stats

        learner.meta_backward = meta_backward  # type: ignore[method-assign]


@pytest.mark.parametrize("precision", ["float32", "bf16", "float64"])
@pytest.mark.parametrize("learner", sorted(LEARNERS.names()))
def test_every_learner_trains_one_iteration_in_each_precision(learner: str, precision: str) -> None:
    probe = Probe()
    out = run_cell(tiny_cell(learner, precision), torch.device("cpu"), on_setup=probe)
    row = out.row
    assert row["status"] == "ok", row.get("error")
    assert math.isfinite(row["test_acc"]) and math.isfinite(row["peak_mem_mb"])
    assert row["precision"] == precision
    weights = torch.float64 if precision == "float64" else torch.float32
    assert row["dtype"] == str(weights).removeprefix("torch.")
    assert row["autocast_dtype"] == ("bfloat16" if precision == "bf16" else "none")
    assert probe.seen, "the training meta-step ran through the probe"
    for seen in probe.seen:  # the training step (memory is measured on a copy first)
        assert seen["weights"] == {weights} and seen["grads"] == {weights}
        assert seen["autocast"] == (precision == "bf16")
        if precision == "bf16":
            assert seen["autocast_dtype"] == torch.bfloat16
        assert math.isfinite(seen["loss"])


def test_ridge_head_solves_bf16_features_in_float32() -> None:
    """Fails without the fix in r2d2.ridge_head: ``lu_cpu`` has no BFloat16 kernel, which is
    what a CUDA autocast run hands the solve (CPU autocast happens to cast it to float32)."""
    from memcomp.learners.r2d2 import ridge_head

    gen = torch.Generator().manual_seed(0)
    zs = torch.randn(6, 5, generator=gen)
    y = torch.nn.functional.one_hot(torch.arange(3).repeat(2), 3).float()
    lam = torch.tensor(0.5)
    want = ridge_head(zs.double(), y.double(), lam.double())
    got = ridge_head(zs.bfloat16(), y.bfloat16(), lam)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=0.05, atol=0.02)  # bf16 inputs
    with torch.autocast("cpu", dtype=torch.bfloat16):  # Gram and solve in float32 here too
        exact = ridge_head(zs, y, lam)
    assert exact.dtype == torch.float32
    torch.testing.assert_close(exact.double(), want, rtol=1e-5, atol=1e-6)
