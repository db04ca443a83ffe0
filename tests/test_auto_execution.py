"""``execution: auto`` (issue 17, point 2): the meta-device predictor, the chunk choice, the CPU
rule, the out-of-memory retry and the results row, all on the CPU (CUDA's budget mocked).

The real GPU path is tests/gpu/test_auto_execution_gpu.py.
"""

from __future__ import annotations

import copy
import sys
from typing import Any, ClassVar

import fake_learners  # noqa: F401 - registers the fake-tiny dataset
import pytest
import torch
from helpers_head import one_thread, tiny_learner, tiny_tasks  # noqa: F401

from memcomp.config.cells import Cell, Component
from memcomp.config.settings import Setting, TestConfig, TrainConfig
from memcomp.engine import choose as choose_mod
from memcomp.engine import run_cell
from memcomp.engine.cell import measure_cell_memory
from memcomp.engine.choose import HEADROOM_MB, SAFETY, Choice, choose, choose_into, need_mb
from memcomp.engine.predict import CellProbe, probe_for
from memcomp.learners import LEARNERS, LearnerParams
from memcomp.learners.driver import Execution, plan_chunks, resolve_execution
from memcomp.learners.maml import Maml
from memcomp.learners.mrml import Mrml
from memcomp.learners.params import MamlParams, MrmlParams
from memcomp.measure.budget import MemoryBudget

SHAPE = (1, 8, 8)
MB = 2**20
CHUNK_STATS_BYTES = 4 * 512  # per chunk the driver keeps its loss, CG residual, norm, curvature


def tiny_cell(learner: str, params: dict[str, Any], meta_batch: int = 4, **train: Any) -> Cell:
    """A cell on fake-tiny 8x8 (3-way 1-shot, 2 queries), Conv4 of 3 channels and 2 blocks."""
    return Cell(
        "auto", Component("fake-tiny", {"image_size": SHAPE[1]}),
        Setting(ways=3, shots=1, queries=2), Component("conv4", {"hidden": 3, "blocks": 2}),
        Component(learner, params), TrainConfig(iterations=2, meta_batch=meta_batch, **train),
        TestConfig(episodes=3), 0,
    )  # fmt: skip


# --- the predictor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("learner", "params", "meta_batch", "chunks"),
    [
        ("maml", {"inner_steps": 1, "execution": "batched", "task_chunk": 2}, 5, 3),
        ("maml", {"inner_steps": 1, "execution": "sequential"}, 3, 3),
        ("mrml", {"inner_steps": 2, "cg_steps": 2, "warm_start": True}, 2, 1),
        ("imaml", {"inner_steps": 1, "cg_steps": 1, "execution": "batched"}, 2, 1),
    ],
)
def test_meta_device_prediction_equals_the_cpu_estimate(learner, params, meta_batch, chunks):
    """Run on the meta device with two chunks, the prediction is the CPU estimate of the whole
    meta-batch on real tensors: the baseline to the byte, the peak to the byte when the peak is
    in the first two chunks, else at most the driver's per-chunk statistics (512-byte blocks)
    below it."""
    cell = tiny_cell(learner, params, meta_batch)
    measured = measure_cell_memory(cell, "cpu")
    ex = resolve_execution(tiny_learner(learner, params))
    pred = CellProbe(cell, SHAPE).predict(ex.mode, ex.chunk_used(meta_batch))
    assert pred.how == "meta device"
    assert pred.baseline_mb * MB == measured.baseline_mb * MB
    gap = (measured.peak_mb - pred.peak_mb) * MB
    assert 0 <= gap <= CHUNK_STATS_BYTES * max(0, chunks - 2)
    assert pred.held_mb == pytest.approx(pred.baseline_mb + pred.peak_mb, abs=0.01)


def test_peak_is_affine_in_the_chunk_from_two_tasks_on() -> None:
    """The search's straight line through chunks 2 and 4 predicts chunk 8 within 0.5% (maml, 16 x
    16 images: large enough that the allocator's 512-byte rounding does not matter)."""
    cell = Cell(
        "auto", Component("fake-tiny", {"image_size": 16}), Setting(ways=3, shots=1, queries=2),
        Component("conv4", {"hidden": 8, "blocks": 2}), Component("maml", {"inner_steps": 1}),
        TrainConfig(iterations=2, meta_batch=8), TestConfig(episodes=3), 0,
    )  # fmt: skip
    probe = CellProbe(cell, (1, 16, 16))
    peak = {c: probe.predict("batched", c).peak_mb for c in (2, 4, 8)}
    assert peak[2] + (peak[4] - peak[2]) * 3 == pytest.approx(peak[8], rel=0.005)


def test_a_learner_the_meta_device_cannot_run_is_measured_on_cpu_tensors() -> None:
    """CG with a tolerance reads its residual back (impossible on meta): CPU tensors instead."""
    params = {"inner_steps": 2, "cg_steps": 3, "cg_tol": 1e-3, "execution": "batched"}
    cell = tiny_cell("mrml", params, meta_batch=2)
    pred = CellProbe(cell, SHAPE).predict("batched", 2)
    assert pred.how.startswith("cpu tensors (meta device: ")
    assert pred.peak_mb == measure_cell_memory(cell, "cpu").peak_mb


def test_cells_differing_by_seed_share_one_probe() -> None:
    a = tiny_cell("mrml", {"inner_steps": 2})
    b = copy.replace(a, seed=3) if hasattr(copy, "replace") else Cell(**{**a.__dict__, "seed": 3})
    assert probe_for(a, SHAPE) is probe_for(b, SHAPE)
    assert probe_for(a, SHAPE) is not probe_for(tiny_cell("mrml", {"inner_steps": 3}), SHAPE)


# --- the choice ---------------------------------------------------------------------------------


def budget(mb: float) -> MemoryBudget:
    return MemoryBudget(int(mb * MB), f"budget {mb:g} MB")


MAML_BIG = {"inner_steps": 1}  # grows with the chunk: every task's graph is held


def test_on_cuda_the_largest_chunk_that_fits_is_chosen() -> None:
    cell = tiny_cell("maml", MAML_BIG, meta_batch=7)
    probe = probe_for(cell, SHAPE)
    need = {c: need_mb(probe.predict("batched", c)) for c in (2, 3, 4, 7)}
    whole = choose(cell, SHAPE, "cuda", budget(need[7] + 1), probe=probe)
    assert (whole.execution.mode, whole.execution.chunk, whole.fits) == ("batched", None, True)
    assert whole.prediction == probe.predict("batched", 7) and whole.probes == 1
    cap = (need[3] + need[4]) / 2
    mid = choose(cell, SHAPE, "cuda", budget(cap), probe=probe)
    assert (mid.execution.mode, mid.execution.chunk, mid.fits) == ("batched", 3, True)
    assert need_mb(mid.prediction) <= cap < need[4]
    assert mid.execution.retry_on_oom and "largest chunk that fits: 3 of 7" in mid.execution.reason
    assert mid.probes <= 4
    small = choose(cell, SHAPE, "cuda", budget(need[2] - 0.01), probe=probe)
    assert (small.execution.mode, small.fits) == ("sequential", True)
    assert small.prediction == probe.predict("sequential", 1)
    none = choose(cell, SHAPE, "cuda", budget(HEADROOM_MB), probe=probe)
    assert (none.execution.mode, none.fits) == ("sequential", False)
    assert "does not fit even sequentially" in none.execution.reason


def test_need_is_the_held_memory_with_the_stated_margins() -> None:
    pred = CellProbe(tiny_cell("mrml", {"inner_steps": 2}), SHAPE).predict("batched", 4)
    assert need_mb(pred) == SAFETY * pred.held_mb + HEADROOM_MB
    assert (SAFETY, HEADROOM_MB) == (1.10, 256.0)


def test_explicit_modes_keep_their_meaning_and_are_still_predicted() -> None:
    for params, want in [
        ({"execution": "sequential"}, ("sequential", None, 1)),
        ({"execution": "batched"}, ("batched", None, 4)),
        ({"execution": "batched", "task_chunk": 3}, ("batched", 3, 3)),
        ({"task_chunk": 2}, ("batched", 2, 2)),  # auto with a chunk given: batched in that chunk
    ]:
        got = choose(tiny_cell("maml", {**MAML_BIG, **params}), SHAPE, "cuda", budget(1.0))
        ex = got.execution
        assert (ex.mode, ex.chunk, ex.chunk_used(4)) == want
        assert not ex.retry_on_oom and got.fits is False  # 1 MB: nothing fits, nothing changes
        assert got.prediction is not None and got.prediction.chunk == want[2]


def test_on_a_cpu_auto_follows_the_learner_class_rule() -> None:
    """Batched where it was measured faster on a CPU (mrml, f2sa, sama), else sequential."""
    for name, mode in [("maml", "sequential"), ("imaml", "sequential"), ("anil", "sequential"),
                       ("itd-bio", "sequential"), ("r2d2", "sequential"), ("mrml", "batched"),
                       ("f2sa", "batched"), ("sama", "batched")]:  # fmt: skip
        got = choose(tiny_cell(name, {"inner_steps": 2}), SHAPE, "cpu", predict=False)
        assert (got.execution.mode, got.execution.chunk, got.prediction) == (mode, None, None)
        assert got.execution.reason.startswith("auto, CPU rule of ")
        assert resolve_execution(tiny_learner(name, {"inner_steps": 2})).mode == mode


def test_plan_chunks_follow_the_plan() -> None:
    learner = tiny_learner("maml", {"inner_steps": 1})
    tasks = tiny_tasks(5)
    assert [c.batched for c in plan_chunks(learner, tasks)] == [False] * 5  # CPU rule
    learner.execution_plan = Execution("batched", 2, "test")
    assert [len(c.tasks) for c in plan_chunks(learner, tasks)] == [2, 2, 1]
    seq = tiny_learner("maml", {"inner_steps": 1, "execution": "sequential"})
    seq.execution_plan = None
    assert not any(c.batched for c in plan_chunks(seq, tasks))


# --- the out-of-memory retry --------------------------------------------------------------------


class OomAbove(Maml):
    """maml that runs out of memory in any batched chunk of more than ``limit`` tasks after the
    first chunk (so a partial meta-gradient is already in ``.grad`` when it fails)."""

    limit: ClassVar[int] = 2
    cpu_execution = "batched"

    def inner(self, chunk):  # noqa: ANN001, ANN201
        if chunk.batched and chunk.first > 0 and len(chunk.tasks) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return super().inner(chunk)


def grads(learner: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in learner.meta_parameters()]


def as_class(learner: torch.nn.Module, cls: type) -> torch.nn.Module:
    learner.__class__ = cls
    return learner


def test_oom_retries_once_with_half_the_chunk_and_the_same_meta_gradient() -> None:
    tasks = tiny_tasks(8)
    params = {"inner_steps": 2, "inner_lr": 0.3}
    ref = tiny_learner("maml", {**params, "execution": "sequential"})
    ref.meta_backward(tasks)
    learner = as_class(tiny_learner("maml", params), OomAbove)
    learner.execution_plan = Execution("batched", 4, "test", retry_on_oom=True)
    before = [torch.full_like(p, 0.25) for p in learner.meta_parameters()]
    for p, g in zip(learner.meta_parameters(), before, strict=True):
        p.grad = g.clone()  # a meta-gradient accumulated earlier: must survive the retry
    learner.meta_backward(tasks)
    plan = learner.execution_plan
    assert (plan.oom_retries, plan.chunk) == (1, 2)
    assert "out of memory with 4 tasks a chunk: retried with 2" in plan.reason
    for got, want, pre in zip(grads(learner), grads(ref), before, strict=True):
        torch.testing.assert_close(got, want + pre, rtol=1e-12, atol=1e-13)
    learner.meta_backward(tasks)  # the half chunk stays: no second retry needed
    assert plan.oom_retries == 1


def test_a_second_oom_propagates() -> None:
    learner = as_class(tiny_learner("maml", {"inner_steps": 1}), OomAbove)
    learner.limit = 1  # the half chunk (2) fails too
    learner.execution_plan = Execution("batched", 4, "test", retry_on_oom=True)
    with pytest.raises(torch.OutOfMemoryError):
        learner.meta_backward(tiny_tasks(8))
    assert learner.execution_plan.oom_retries == 1


def test_explicit_batched_never_retries() -> None:
    learner = as_class(tiny_learner("maml", {"inner_steps": 1, "execution": "batched"}), OomAbove)
    learner.execution_plan = None
    learner.params = learner.params.model_copy(update={"task_chunk": 4})
    with pytest.raises(torch.OutOfMemoryError):
        learner.meta_backward(tiny_tasks(8))


class MrmlOomAbove(Mrml):
    def inner(self, chunk):  # noqa: ANN001, ANN201
        if chunk.batched and chunk.first > 0 and len(chunk.tasks) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return super().inner(chunk)


def test_retry_restores_warm_starts() -> None:
    """mrml's warm starts written by the chunks before the failure are put back first."""
    params = {"inner_steps": 3, "cg_steps": 3, "l2": 0.1, "warm_start": True}
    tasks = [tiny_tasks(8, seed=s) for s in (1, 2)]
    ref = tiny_learner("mrml", {**params, "execution": "batched", "task_chunk": 2})
    learner = as_class(tiny_learner("mrml", params), MrmlOomAbove)
    learner.execution_plan = Execution("batched", 4, "test", retry_on_oom=True)
    for batch in tasks:  # the second meta-batch starts from the first one's warm state
        for m in (ref, learner):
            for p in m.meta_parameters():
                p.grad = None
            m.meta_backward(batch)
    assert learner.execution_plan.oom_retries == 1
    for got, want in zip(grads(learner), grads(ref), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for slot in range(8):
        for a, b in zip(learner.warm_state[slot], ref.warm_state[slot], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# --- the cell: row columns, log line, status=oom ------------------------------------------------


class AlwaysOomParams(MamlParams):
    pass


class AlwaysOom(Maml):
    """Batched chunks of more than one task run out of memory: the retry fails too."""

    cpu_execution = "batched"

    def inner(self, chunk):  # noqa: ANN001, ANN201
        if chunk.batched and len(chunk.tasks) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return super().inner(chunk)


@pytest.fixture
def always_oom() -> Any:
    LEARNERS._entries.pop("t-always-oom", None)
    LEARNERS.register("t-always-oom", "test: OOM in batched chunks", AlwaysOomParams)(AlwaysOom)
    yield "t-always-oom"
    LEARNERS._entries.pop("t-always-oom", None)


def test_a_cell_whose_half_chunk_fails_too_is_an_oom_row(always_oom: str) -> None:
    cell = tiny_cell(always_oom, {"inner_steps": 1}, meta_batch=4)
    out = run_cell(cell, torch.device("cpu"))
    row = out.row
    assert row["status"] == "oom" and "out of memory" in row["error"]
    assert (row["execution_mode"], row["task_chunk_used"], row["oom_retries"]) == ("batched", 2, 1)
    assert "retried with 2" in row["chunk_reason"]


def test_row_and_log_say_what_ran(capsys: pytest.CaptureFixture) -> None:
    cell = tiny_cell("mrml", {"inner_steps": 2, "cg_steps": 2}, meta_batch=3)
    row = run_cell(cell, torch.device("cpu")).row
    assert row["status"] == "ok"
    assert (row["execution_mode"], row["task_chunk_used"], row["oom_retries"]) == ("batched", 3, 0)
    assert row["chunk_reason"].startswith("auto, CPU rule of Mrml: batched")
    assert row["predicted_peak_mb"] is None and row["memory_budget_mb"] is None
    err = capsys.readouterr().err
    assert f"memcomp: cell {cell.id}: execution batched, 3 of 3 tasks a chunk: auto" in err


def test_a_cuda_cell_is_planned_within_the_cuda_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU the choice reads the budget (mocked here) and predicts; the row records it."""
    cell = tiny_cell("maml", MAML_BIG, meta_batch=7)
    probe = probe_for(cell, SHAPE)
    cap = (need_mb(probe.predict("batched", 3)) + need_mb(probe.predict("batched", 4))) / 2
    monkeypatch.setattr(choose_mod, "cuda_budget", lambda device: budget(cap))
    learner = tiny_learner("maml", MAML_BIG).float()
    row: dict[str, Any] = {}
    got = choose_into(row, cell, learner, torch.device("cuda"), SHAPE)
    assert isinstance(got, Choice) and learner.execution_plan is got.execution
    assert (row["execution_mode"], row["task_chunk_used"], row["oom_retries"]) == ("batched", 3, 0)
    assert row["predicted_peak_mb"] == got.prediction.peak_mb
    assert row["memory_budget_mb"] == pytest.approx(cap)


def test_no_execution_parameter_runs_sequentially() -> None:
    class Plain(LearnerParams):
        pass

    LEARNERS._entries.pop("t-plain", None)
    LEARNERS.register("t-plain", "test", Plain)(lambda b, w, p: OomAbove(b, w, MamlParams()))
    try:
        learner = tiny_learner("maml", {})
        learner.params = Plain()
        row: dict[str, Any] = {}
        choose_into(row, tiny_cell("t-plain", {}), learner, torch.device("cpu"), SHAPE)
        assert row["execution_mode"] == "sequential"
        assert "no execution parameter" in row["chunk_reason"]
    finally:
        LEARNERS._entries.pop("t-plain", None)


def test_mrml_params_default_is_auto() -> None:
    p = MrmlParams()
    assert (p.execution, p.task_chunk) == ("auto", None)
    assert (
        "auto"
        in sys.modules["memcomp.learners.params"]
        .ExecutionParams.model_fields["execution"]
        .description
    )
