"""``train.compile: none | graphs | inductor``: float64 meta-gradients of compiled ``mrml``
equal the eager ones on the CPU (inductor: a C compiler is on this machine), refusals at
expansion naming the learner and the option, ``graphs`` off CUDA a skipped row, the record in
rows and the manifest, and the ids of cells without the key unchanged. CUDA graphs themselves:
tests/gpu/test_compile_gpu.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_head import one_thread  # noqa: F401
from helpers_learners import make_learner, make_task, run_meta_backward

from memcomp.config import ConfigError, expand, suite_from_dict
from memcomp.config.settings import COMPILE_MODES, TrainConfig
from memcomp.engine import run_cell
from memcomp.engine.compiling import apply_compile, compile_skip_reason
from memcomp.engine.row import base_row
from memcomp.errors import InputError
from memcomp.verify.hostsync import HostReads

SUITE: dict[str, Any] = {
    "name": "compile",
    "device": "cpu",
    "datasets": [{"name": "synthetic", "image_size": 8, "channels": 1}],
    "settings": [{"ways": 3, "shots": 1, "queries": 2}],
    "backbones": [{"name": "conv4", "hidden": 3, "blocks": 2}],
    "train": {"iterations": 1, "meta_batch": 2, "val_episodes": 1},
    "test": {"episodes": 1},
    "seeds": [0],
    "learners": [{"name": "mrml", "inner_steps": 2, "cg_steps": 2}],
}
MRML = {"inner_steps": 5, "inner_lr": 0.5, "cg_steps": 5, "l2": 0.1}


def cells(train: dict[str, Any] | None = None, learners: list[dict] | None = None) -> list:
    suite = copy.deepcopy(SUITE)
    suite["train"].update(train or {})
    if learners is not None:
        suite["learners"] = learners
    return expand(suite_from_dict(suite))


def refused(train: dict[str, Any], learners: list[dict]) -> str:
    with pytest.raises(ConfigError) as e:
        cells(train, learners)
    return str(e.value)


def compiled_grads(params: dict, backend: str, steps: int = 1) -> tuple[list, list]:
    """Meta-gradients of ``steps`` meta-steps, eager and compiled, same weights and tasks."""
    tasks = [make_task(s) for s in (11, 12, 13)]
    eager, comp = make_learner("mrml", params), make_learner("mrml", params)
    apply_compile(comp, "mrml", "inductor", backend=backend)
    return (
        [run_meta_backward(eager, tasks) for _ in range(steps)],
        [run_meta_backward(comp, tasks) for _ in range(steps)],
    )


@pytest.mark.parametrize("execution", ["batched", "sequential"])
def test_inductor_meta_gradient_equals_eager_in_float64(execution: str) -> None:
    """torch.compile with the inductor backend (C++ code on the CPU): the same meta-gradient up
    to the reordering of floating-point sums (measured 1.3e-13 relative)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    (g0,), (g1,) = compiled_grads({**MRML, "execution": execution}, "inductor")
    assert counters["stats"]["unique_graphs"] == 2  # the head steps and the solve, compiled
    assert float(g0.abs().max()) > 0.1
    torch.testing.assert_close(g1, g0, rtol=1e-11, atol=1e-11 * float(g0.abs().max()))


@pytest.mark.parametrize(
    "extra", [{"warm_start": True}, {"solver": "neumann", "cg_steps": 12}], ids=["warm", "neumann"]
)
def test_compiled_warm_starts_and_neumann_equal_eager(extra: dict) -> None:
    """Warm starts (CG from the stored v; compiled, the cold start is v = 0, the same iterates)
    and the Neumann solver, over 2 meta-steps (aot_eager: the same graph capture as inductor,
    without its code generation, to keep the test short)."""
    g0, g1 = compiled_grads({**MRML, **extra, "execution": "batched"}, "aot_eager", steps=2)
    for a, b in zip(g0, g1, strict=True):
        # aot_eager decomposes ops (softmax, addcmul): rounding differs by ~4e-12 of the largest
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10 * float(a.abs().max()))
    assert not torch.equal(g0[0], g0[1]) or "warm_start" not in extra  # the warm step differs


def test_compiled_meta_step_reads_nothing_back_and_the_cpu_estimate_sees_its_ops() -> None:
    from memcomp.measure.memory import MemoryMeter

    tasks = [make_task(s) for s in (11, 12)]
    peaks = []
    for compiled in (False, True):
        learner = make_learner("mrml", {**MRML, "execution": "batched"})
        if compiled:
            apply_compile(learner, "mrml", "inductor", backend="aot_eager")
        run_meta_backward(learner, tasks)
        with HostReads() as reads:
            run_meta_backward(learner, tasks)
        assert reads.count == 0
        meter = MemoryMeter(torch.device("cpu"), "auto", resident=[learner])
        with meter.measure():
            run_meta_backward(learner, tasks)
        peaks.append(meter.result().peak_mb)
    # under the estimate's dispatch mode the eager ops run (compiled, CG starts from a zero vector
    # instead of None: one q-vector and one product more, 1 KB here)
    assert peaks[0] > 0 and abs(peaks[1] - peaks[0]) < 2 / 1024


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("mode", ["graphs", "inductor"])
@pytest.mark.parametrize(
    "learner", [{"name": "maml"}, {"name": "imaml"}, {"name": "anil"}, {"name": "fomaml"}]
)
def test_learners_that_do_not_declare_compile_are_refused_at_expansion(
    learner: dict, mode: str
) -> None:
    msg = refused({"compile": mode}, [learner])
    name = learner["name"]
    assert f"learner {name} does not support compile: {mode}" in msg
    assert "learners that do: mrml" in msg and "double backward" in msg
    assert "learners[0]" in msg  # located at the entry


def test_a_compile_key_in_one_learner_entry_refuses_only_that_entry() -> None:
    ok = cells({}, [{"name": "mrml", "train": {"compile": "inductor"}}, {"name": "maml"}])
    assert [c.train.compile for c in ok] == ["inductor", "none"]
    msg = refused({}, [{"name": "mrml"}, {"name": "maml", "train": {"compile": "inductor"}}])
    assert "learners[1]" in msg and "learner maml does not support compile: inductor" in msg


def test_mrml_parameters_that_read_the_host_are_refused_compiled() -> None:
    msg = refused({"compile": "graphs"}, [{"name": "mrml", "cg_tol": 1e-6}])
    assert "learner mrml with compile: graphs: cg_tol" in msg and "drop cg_tol" in msg
    msg = refused({"compile": "inductor"}, [{"name": "mrml", "hvp": "forward"}])
    assert "hvp: forward" in msg


def test_apply_compile_refuses_a_learner_built_by_hand() -> None:
    with pytest.raises(InputError, match="learner maml does not support compile: inductor"):
        apply_compile(make_learner("maml", {"inner_steps": 1}), "maml", "inductor")
    apply_compile(make_learner("maml", {"inner_steps": 1}), "maml", "none")  # nothing to do


def test_unknown_compile_mode_is_a_validation_error() -> None:
    msg = refused({"compile": "tensorrt"}, [{"name": "mrml"}])
    assert "compile" in msg and "graphs" in msg


# ----------------------------------------------------------------------------- records and ids


def test_compile_none_keeps_the_id_and_other_modes_are_other_cells() -> None:
    (plain,) = cells()
    (none,) = cells({"compile": "none"})
    (ind,) = cells({"compile": "inductor"})
    (gra,) = cells({"compile": "graphs"})
    assert plain.id == none.id and len({plain.id, ind.id, gra.id}) == 3
    assert "compile" not in plain.config()["train"]
    assert ind.config()["train"]["compile"] == "inductor"
    assert TrainConfig().compile == "none" and COMPILE_MODES == ("none", "graphs", "inductor")


def test_graphs_off_cuda_is_a_skipped_row_with_the_reason() -> None:
    (cell,) = cells({"compile": "graphs"})
    row = run_cell(cell, torch.device("cpu")).row
    assert row["status"] == "skipped" and row["compile"] == "graphs"
    assert row["error"] == compile_skip_reason("graphs", torch.device("cpu"))
    assert "needs a CUDA device" in row["error"]
    assert compile_skip_reason("inductor", torch.device("cpu")) is None


def test_an_inductor_cell_trains_on_the_cpu_and_rows_and_manifest_record_it(
    tmp_path: Path,
) -> None:
    from memcomp.exec.api import run_suite

    suite = copy.deepcopy(SUITE)
    suite["learners"] = [
        {"name": "mrml", "inner_steps": 2, "cg_steps": 2},
        {"name": "mrml", "inner_steps": 2, "cg_steps": 2, "train": {"compile": "inductor"}},
    ]
    path = tmp_path / "compile.yaml"
    path.write_text(json.dumps(suite))
    folder, _ = run_suite(path, tmp_path / "out", device="cpu", isolation="inline")
    import pandas as pd

    runs = pd.read_csv(folder / "runs.csv")
    assert runs["status"].tolist() == ["ok", "ok"], runs["error"].tolist()
    assert sorted(runs["compile"]) == ["inductor", "none"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["compile"].values()) == ["inductor", "none"]
    assert set(manifest["compile"]) == set(runs["cell_id"])
    (cell,) = cells({"compile": "inductor"})
    assert base_row(cell, torch.device("cpu"))["compile"] == "inductor"
