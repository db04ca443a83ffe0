"""Batched execution: per-task BatchNorm in one forward; the same meta-gradient as sequential."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers_head import (
    check_directional,
    meta_grads,
    one_thread,  # noqa: F401
    tiny_learner,
    tiny_tasks,
)
from pydantic import ValidationError
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from memcomp.backbones import build_backbone
from memcomp.backbones.norm import TaskBatchNorm2d, deinterleave, interleave, task_groups
from memcomp.learners import LEARNERS
from memcomp.learners.batching import grouped_features
from memcomp.learners.driver import task_chunks
from memcomp.numerics import head
from memcomp.types import Task

# (learner, params) pairs covering every learner and feature mode; small K and N keep this fast.
CASES = [
    ("maml", {"inner_steps": 2, "inner_lr": 0.4}),
    ("fomaml", {"inner_steps": 2, "inner_lr": 0.4}),
    ("imaml", {"inner_steps": 3, "lam": 4.0, "cg_steps": 4}),
    ("anil", {"inner_steps": 3, "inner_lr": 0.5, "features": "once"}),
    ("anil", {"inner_steps": 3, "inner_lr": 0.5, "features": "per-step"}),
    ("itd-bio", {"inner_steps": 3, "l2": 0.05, "features": "per-step"}),
    ("itd-bio", {"inner_steps": 3, "l2": 0.05, "features": "once"}),
    ("mrml", {"inner_steps": 5, "cg_steps": 6, "l2": 0.05}),
]
IDS = [f"{n}-{p.get('features', '')}" for n, p in CASES]


def rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = torch.cat([(x - y).flatten() for x, y in zip(a, b, strict=True)]).norm()
    return float(num / torch.cat([y.flatten() for y in b]).norm())


def both_modes(name: str, params: dict, tasks: list[Task], dtype=torch.float64, **batched):
    """Meta-gradients, losses and CG residuals of sequential and batched execution."""
    out = []
    for mode, extra in (("sequential", {}), ("batched", batched)):
        learner = tiny_learner(name, {**params, "execution": mode, **extra}).to(dtype)
        grads = meta_grads(learner, tasks)
        for p in learner.meta_parameters():
            p.grad = None
        out.append((grads, learner.meta_backward(tasks)))
    return out


# --- per-task BatchNorm in one forward ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["interleaved", "blocked"])
@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("conv4", {"hidden": 4, "blocks": 2}, (3, 8, 8)),
        ("resnet12", {"widths": [4, 6]}, (3, 8, 8)),
    ],
)
def test_grouped_forward_equals_per_task_forwards(name, params, shape, layout) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, params, shape).double()
    assert any(isinstance(m, TaskBatchNorm2d) for m in net.modules())
    x = torch.randn(3, 5, *shape, dtype=torch.float64) * torch.arange(1.0, 4.0).view(3, 1, 1, 1, 1)
    x.requires_grad_(True)
    ref = torch.stack([net(xi) for xi in x])
    (gx_ref, *gp_ref) = torch.autograd.grad(ref.square().sum(), [x, *net.parameters()])
    stacked = interleave(x) if layout == "interleaved" else x.flatten(0, 1)
    with task_groups(3, layout):
        out = net(stacked)
    out = deinterleave(out, 3) if layout == "interleaved" else out.unflatten(0, (3, 5))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (gx, *gp) = torch.autograd.grad(out.square().sum(), [x, *net.parameters()])
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(gp, gp_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # without the context the stacked batch shares statistics: different features
    assert (net(x.flatten(0, 1)).unflatten(0, (3, 5)) - ref).abs().max() > 1e-3


def test_grouped_features_refuses_plain_batchnorm_and_uneven_groups() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    with pytest.raises(ValueError, match="TaskBatchNorm2d"):
        grouped_features(net, [torch.randn(2, 1, 5, 5)] * 2)
    bn = TaskBatchNorm2d(2, track_running_stats=False)
    with task_groups(2), pytest.raises(ValueError, match="equal tasks"):
        bn(torch.randn(5, 2, 3, 3))
    with pytest.raises(ValueError):
        task_groups(0).__enter__()
    assert [len(c) for c in task_chunks(list(range(5)), 2)] == [2, 2, 1]  # type: ignore[arg-type]


# --- same meta-gradient in both modes ----------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_batched_equals_sequential_float64(name: str, params: dict) -> None:
    tasks = tiny_tasks(3, seed=5)
    (g_seq, s_seq), (g_bat, s_bat) = both_modes(name, params, tasks)
    assert max(float(g.abs().max()) for g in g_seq) > 1e-4
    assert rel_err(g_bat, g_seq) <= 1e-10
    torch.testing.assert_close(s_bat.loss, s_seq.loss, rtol=1e-12, atol=0)
    assert (s_bat.cg_residual is None) == (s_seq.cg_residual is None)
    if s_seq.cg_residual is not None:
        torch.testing.assert_close(s_bat.cg_residual, s_seq.cg_residual, rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_task_chunks_equal_sequential(name: str, params: dict) -> None:
    tasks = tiny_tasks(3, seed=6)
    (g_seq, _), (g_bat, _) = both_modes(name, params, tasks, task_chunk=2)
    assert rel_err(g_bat, g_seq) <= 1e-10


# float32: mrml with a better-conditioned CG system (l2 = 0.3); at l2 = 0.05 sequential float32
# alone is already 1.7e-5 away from float64, so that case would test rounding, not the batching.
F32_CASES = CASES[:3] + CASES[4:6] + [("mrml", {"inner_steps": 5, "cg_steps": 6, "l2": 0.3})]


@pytest.mark.parametrize(("name", "params"), F32_CASES, ids=[n for n, _ in F32_CASES])
def test_batched_equals_sequential_float32(name: str, params: dict) -> None:
    tasks = tiny_tasks(3, seed=7, dtype=torch.float32)
    (g_seq, _), (g_bat, _) = both_modes(name, params, tasks, dtype=torch.float32)
    assert all(g.dtype == torch.float32 for g in g_bat)
    assert rel_err(g_bat, g_seq) <= 1e-5
    (g64, _), _ = both_modes(name, params, tiny_tasks(3, seed=7))
    assert rel_err([g.double() for g in g_bat], g64) <= 1e-5


def test_batched_maml_matches_finite_differences_with_batchnorm() -> None:
    """vmap'ed losses + plain autograd: exact second order through the fused BatchNorm."""
    k, lr = 2, 0.4
    learner = tiny_learner("maml", {"inner_steps": k, "inner_lr": lr, "execution": "batched"})
    tasks = tiny_tasks(2, seed=8)
    params = learner.meta_parameters()
    grads = meta_grads(learner, tasks)

    def objective() -> float:
        total = 0.0
        for t in tasks:
            fast = [p.detach().clone() for p in params]
            for _ in range(k):
                fast = [f.requires_grad_() for f in fast]
                loss = F.cross_entropy(_forward(learner, fast, t.xs), t.ys)
                grads = torch.autograd.grad(loss, fast)
                fast = [f - lr * g for f, g in zip(fast, grads, strict=True)]
            total += float(F.cross_entropy(_forward(learner, fast, t.xq), t.yq).detach())
        return total / len(tasks)

    with torch.enable_grad():
        check_directional(objective, params, grads, n_dirs=3, rtol=1e-6)


def _forward(learner, flat: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    return torch.func.functional_call(learner, dict(zip(names, flat, strict=True)), (x,))


def test_mrml_warm_start_batched_equals_sequential() -> None:
    params = {"inner_steps": 6, "cg_steps": 8, "l2": 0.1, "warm_start": True}
    tasks = tiny_tasks(3, seed=9)
    learners = {
        mode: tiny_learner("mrml", {**params, "execution": mode, "task_chunk": 2})
        for mode in ("sequential", "batched")
    }
    for _ in range(2):  # the second call starts from the stored (W, b, v) of every slot
        g = {mode: meta_grads(lrn, tasks) for mode, lrn in learners.items()}
        assert rel_err(g["batched"], g["sequential"]) <= 1e-10
    for slot in range(3):
        bat, seq = learners["batched"].warm_state[slot], learners["sequential"].warm_state[slot]
        for a, b in zip(bat, seq, strict=True):
            assert rel_err([a], [b]) <= 1e-10
    assert learners["batched"].last_cg_iterations == [8, 8, 8]


def test_uneven_tasks_fall_back_to_sequential() -> None:
    tasks = tiny_tasks(1, seed=3) + tiny_tasks(1, seed=4, shots=3)
    for name in ("maml", "mrml"):
        (g_seq, _), (g_bat, _) = both_modes(name, {"inner_steps": 2}, tasks)
        assert rel_err(g_bat, g_seq) <= 1e-10


# --- no host synchronisation -------------------------------------------------------------------


class HostReads(TorchDispatchMode):
    """Counts ops that read a tensor value back to the host (``.item()``, ``bool(t)``)."""

    READS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::item", "aten::equal"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func._schema.name in self.READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_batched_meta_backward_never_reads_back(name: str, params: dict) -> None:
    learner = tiny_learner(name, {**params, "execution": "batched"})
    tasks = tiny_tasks(2)
    with HostReads() as reads:
        stats = learner.meta_backward(tasks)
    assert reads.count == 0
    with HostReads() as reads:
        float(stats.loss)
    assert reads.count == 1  # the mode does see host reads


def test_execution_params() -> None:
    for name in ("maml", "fomaml", "imaml", "anil", "itd-bio", "mrml"):
        p = LEARNERS.get(name).params()
        assert (p.execution, p.task_chunk) == ("auto", None)
        for bad in ({"execution": "parallel"}, {"task_chunk": 0}):
            with pytest.raises(ValidationError):
                LEARNERS.get(name).params(**bad)


def test_onehot_needs_no_host_read() -> None:
    y = torch.tensor([[2, 0], [1, 1]])
    with HostReads() as reads:
        oh = head.onehot(y, 3, torch.zeros((), dtype=torch.float64))
    assert reads.count == 0
    torch.testing.assert_close(oh, F.one_hot(y, 3).double())


# --- the speed benchmark -----------------------------------------------------------------------


def test_speed_benchmark_quick(tmp_path, capsys, monkeypatch) -> None:
    import csv
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_speed", path)
    assert spec is not None and spec.loader is not None
    speed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, speed)
    spec.loader.exec_module(speed)
    out = tmp_path / "speed.csv"
    threads = torch.get_num_threads()
    try:
        rows = speed.main(["--quick", "--learners", "mrml", "fomaml", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "x floor" in printed and "seq/bat" in printed
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["learner"], r["mode"]) for r in table] == [
        ("floor", "-"),
        ("mrml", "sequential"),
        ("mrml", "batched"),
        ("fomaml", "sequential"),
        ("fomaml", "batched"),
    ]
    for r in table:
        assert r["status"] == "ok" and float(r["seconds"]) > 0
        assert float(r["peak_mb"]) > 0  # the CPU estimate of memory.py
    assert float(table[0]["vs_floor"]) == 1.0
    for r in rows:
        if r["mode"] == "batched":
            seq = next(
                x for x in rows if x["learner"] == r["learner"] and x["mode"] == "sequential"
            )
            assert r["batched_speedup"] == pytest.approx(seq["seconds"] / r["seconds"])
