"""``train.compile`` on a real CUDA GPU (skipped without one; UNTESTED so far: written in a session
without a GPU): CUDA-graph capture of mrml's head steps and solve gives the eager meta-gradient
(float64, batched and sequential, warm starts), replays without host reads, and a ``graphs`` /
``inductor`` cell trains with the mode recorded."""

from __future__ import annotations

import math

import pytest
import torch

from memcomp.config import expand, suite_from_dict
from memcomp.engine import run_cell
from memcomp.engine.compiling import CudaGraphed, apply_compile
from memcomp.verify.fixtures import make_learner, make_task, run_meta_backward
from memcomp.verify.hostsync import HostReads

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
MRML = {"inner_steps": 5, "inner_lr": 0.5, "cg_steps": 5, "l2": 0.1}


def learners(params: dict, mode: str):
    eager = make_learner("mrml", params).to(CUDA)
    comp = make_learner("mrml", params).to(CUDA)
    apply_compile(comp, "mrml", mode)
    return eager, comp


@pytest.mark.parametrize("execution", ["batched", "sequential"])
@pytest.mark.parametrize("mode", ["graphs", "inductor"])
@pytest.mark.parametrize("warm", [False, True])
def test_compiled_meta_gradient_equals_eager_on_cuda(execution: str, mode: str, warm: bool) -> None:
    tasks = [make_task(s).to(CUDA) for s in (11, 12, 13)]
    eager, comp = learners({**MRML, "execution": execution, "warm_start": warm}, mode)
    for _ in range(3):  # capture, then replays (and warm starts from stored solutions)
        g0, g1 = run_meta_backward(eager, tasks), run_meta_backward(comp, tasks)
        torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-10 * float(g0.abs().max()))
    if mode == "graphs":
        assert isinstance(comp._steps.wrapped, CudaGraphed)
        assert len(comp._steps.wrapped.graphs) == 1  # one capture per input shape


def test_graph_replays_read_nothing_back() -> None:
    tasks = [make_task(s).to(CUDA) for s in (11, 12)]
    _, comp = learners({**MRML, "execution": "batched"}, "graphs")
    run_meta_backward(comp, tasks)  # capture
    with HostReads() as reads:
        run_meta_backward(comp, tasks)
    assert reads.count == 0


@pytest.mark.parametrize("mode", ["graphs", "inductor"])
def test_a_compiled_mrml_cell_trains_on_cuda(mode: str) -> None:
    data = {"name": "synthetic", "image_size": 8, "channels": 1, "train_classes": 4,
            "val_classes": 3, "test_classes": 3, "images_per_class": 6}  # fmt: skip
    suite = {
        "name": "compile-gpu", "device": "cuda", "datasets": [data],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 3, "blocks": 2}],
        "train": {"iterations": 2, "meta_batch": 2, "eval_every": 2, "val_episodes": 1,
                  "compile": mode},
        "test": {"episodes": 1}, "learners": [{"name": "mrml", "inner_steps": 2, "cg_steps": 2}],
    }  # fmt: skip
    (cell,) = expand(suite_from_dict(suite))
    row = run_cell(cell, CUDA).row
    assert row["status"] == "ok", row.get("error")
    assert row["compile"] == mode and math.isfinite(row["test_acc"])
