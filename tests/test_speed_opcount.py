"""``benchmarks/speed.py --compile ... --opcount`` (issue 18): op counts per meta-iteration from
torch.profiler, their ratio to the floor's, refused and skipped compile modes as rows, and
(slow: inductor compiles for ~20-30 s) a compiled ``mrml`` whose meta-gradient equals the eager
one and whose generated kernels run, compiled, under the profiler. Tiny shapes on the CPU."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

ROOT = Path(__file__).resolve().parents[1]


def load_speed():
    path = ROOT / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_speed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed():
    threads = torch.get_num_threads()
    saved = sys.modules.get("memcomp_bench_speed")
    yield load_speed()
    torch.set_num_threads(threads)
    if saved is None:
        sys.modules.pop("memcomp_bench_speed", None)
    else:
        sys.modules["memcomp_bench_speed"] = saved


def by_key(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["learner"], r["mode"], r["compile"]): r for r in rows}


@pytest.fixture(scope="module")
def counted(speed, tmp_path_factory):
    """mrml (both modes) and the floor, eager and ``graphs`` (skipped on the CPU), counted."""
    out = tmp_path_factory.mktemp("speed") / "speed.csv"
    argv = ["--quick", "--learners", "mrml", "--compile", "none", "graphs", "--opcount",
            "--no-memory", "--out", str(out)]  # fmt: skip
    return speed.main(argv), out


def test_op_counts_are_positive_integers_and_ratios_to_the_floor(counted) -> None:
    rows, _ = counted
    got = by_key(rows)
    floor = got["floor", "-", "none"]
    assert floor["status"] == "ok" and floor["ops_vs_floor"] == 1.0
    for mode in ("sequential", "batched"):
        row = got["mrml", mode, "none"]
        assert row["status"] == "ok"
        ops = row["ops_per_iter"]
        assert isinstance(ops, int) and ops > 0
        assert row["ops_vs_floor"] == pytest.approx(ops / floor["ops_per_iter"], rel=1e-12)
        assert row["compiled_kernels"] == 0  # eager: no generated kernels
        assert row["cuda_kernels"] == "" and row["cuda_launches"] == ""  # the CPU
    assert isinstance(floor["ops_per_iter"], int) and floor["ops_per_iter"] > 0
    # batched mrml runs one backbone forward over all tasks: fewer ops than task after task
    seq, bat = got["mrml", "sequential", "none"], got["mrml", "batched", "none"]
    assert bat["ops_per_iter"] < seq["ops_per_iter"]


def test_the_same_step_counts_the_same_ops(speed, counted) -> None:
    """The count is of dispatched ops, not of time: one more profiled step gives it again."""
    rows, _ = counted
    cfg = speed.replace(speed.Config(), ways=3, shots=2, queries=2, meta_batch=4)
    tasks = speed.make_tasks(cfg, speed.QUICK_SHAPE, torch.device("cpu"))
    step, _ = speed.floor_step(speed.QUICK_SHAPE, cfg, tasks, torch.device("cpu"))
    step()
    first = speed.count_ops(step, torch.device("cpu"))["ops_per_iter"]
    assert first == speed.count_ops(step, torch.device("cpu"))["ops_per_iter"]
    assert first == by_key(rows)["floor", "-", "none"]["ops_per_iter"]


def test_graphs_on_the_cpu_is_a_skipped_row_with_the_reason(counted) -> None:
    rows, out = counted
    for mode in ("sequential", "batched"):
        row = by_key(rows)["mrml", mode, "graphs"]
        assert row["status"] == "skipped" and math.isnan(row["seconds"])
        assert "graphs captures CUDA graphs and needs a CUDA device" in row["error"]
        assert "ops_per_iter" not in row and "compile_err" not in row  # not run at all
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["learner"], r["mode"], r["compile"], r["status"]) for r in table] == [
        ("floor", "-", "none", "ok"),
        ("mrml", "sequential", "none", "ok"),
        ("mrml", "sequential", "graphs", "skipped"),
        ("mrml", "batched", "none", "ok"),
        ("mrml", "batched", "graphs", "skipped"),
    ]
    assert (
        int(table[1]["ops_per_iter"]) == by_key(rows)["mrml", "sequential", "none"]["ops_per_iter"]
    )


def test_a_learner_that_does_not_take_a_compile_mode_is_a_refused_row(speed, tmp_path, capsys):
    out = tmp_path / "refused.csv"
    argv = ["--quick", "--learners", "maml", "anil", "--modes", "batched", "--compile",
            "inductor", "graphs", "--no-memory", "--out", str(out)]  # fmt: skip
    rows = speed.main(argv)
    assert [(r["learner"], r["compile"], r["status"]) for r in rows] == [
        ("floor", "none", "ok"),
        ("maml", "inductor", "refused"),
        ("maml", "graphs", "refused"),  # refused before skipped: the learner cannot, anywhere
        ("anil", "inductor", "refused"),
        ("anil", "graphs", "refused"),
    ]
    for r in rows[1:]:
        assert math.isnan(r["seconds"]) and math.isnan(r["vs_floor"])
        assert f"learner {r['learner']} does not support compile: {r['compile']}" in r["error"]
        assert "learners that do: mrml" in r["error"]
    assert "Traceback" not in capsys.readouterr().err  # a row, not a failure
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert table[1]["status"] == "refused" and "compile: inductor" in table[1]["error"]


def test_event_classification_on_cuda_events(speed) -> None:
    """The CUDA columns from profiler events (no GPU here: events as torch.profiler builds them
    on one, names from CUPTI): kernels run on the device, host launch calls, Triton launches."""

    def ev(name, device=DeviceType.CPU, activity="cpu_op", parent=None):
        return SimpleNamespace(name=name, device_type=device, activity_type=activity,
                               cpu_parent=parent)  # fmt: skip

    linear = ev("aten::linear")
    events = [
        linear,
        ev("aten::addmm", parent=linear),  # inside another ATen op: not counted
        ev("autograd::engine::evaluate_function: AddmmBackward0"),
        ev("aten::mm", parent=ev("AddmmBackward0")),  # called by a backward node: counted
        ev("cudaLaunchKernel", activity="cuda_runtime", parent=linear),
        ev("triton_poi_fused_add_0"),  # the host record of an inductor Triton launch
        ev("cuLaunchKernel", activity="cuda_driver"),
        ev("cudaGraphLaunch", activity="cuda_runtime"),
        ev("cudaMemcpyAsync", activity="cuda_runtime"),
        ev("triton_poi_fused_add_0", DeviceType.CUDA, "kernel"),
        ev("volta_sgemm_128x64_nn", DeviceType.CUDA, "kernel"),
        ev("Memcpy HtoD (Pageable -> Device)", DeviceType.CUDA, "gpu_memcpy"),
        ev("Memset (Device)", DeviceType.CUDA, "gpu_memset"),
        ev("graph_0_cpp_fused_add_mul_sub_1"),  # inductor's C++ kernel on a CPU
    ]
    assert speed.classify_events(events) == {
        "ops_per_iter": 2,
        "compiled_kernels": 2,
        "cuda_kernels": 2,
        "cuda_launches": 3,
    }


@pytest.mark.slow
def test_inductor_mrml_equals_eager_and_runs_compiled_under_the_profiler(speed, tmp_path):
    import torch._inductor.config as inductor_config

    out = tmp_path / "inductor.csv"
    rows = speed.main(["--quick", "--learners", "mrml", "--modes", "batched", "--compile", "none",
                       "inductor", "--opcount", "--no-memory", "--out", str(out)])  # fmt: skip
    got = by_key(rows)
    eager, compiled = got["mrml", "batched", "none"], got["mrml", "batched", "inductor"]
    assert compiled["status"] == "ok" and compiled["seconds"] > 0
    assert 0 <= compiled["compile_err"] < 1e-4  # float32, inductor's reordered sums
    assert "compile_err" not in eager
    # the head steps' and the solve's generated kernels ran under the profiler: compiled code
    # stays compiled there (traced_eagerly falls back only under a Python dispatch mode)
    assert compiled["compiled_kernels"] > 0 and eager["compiled_kernels"] == 0
    assert 0 < compiled["ops_per_iter"] < eager["ops_per_iter"]
    floor = got["floor", "-", "none"]["ops_per_iter"]
    assert compiled["ops_vs_floor"] == pytest.approx(compiled["ops_per_iter"] / floor)
    assert inductor_config.cpp.enable_kernel_profile is False  # restored after the run
    with out.open() as fh:
        table = {(r["learner"], r["compile"]): r for r in csv.DictReader(fh)}
    assert float(table["mrml", "inductor"]["compile_err"]) == pytest.approx(compiled["compile_err"])


@pytest.mark.parametrize(("scale", "status"), [(1.0, "ok"), (1.02, "mismatch")])
def test_a_wrong_compiled_meta_gradient_is_a_mismatch_and_still_timed(
    speed, monkeypatch, tmp_path, scale, status
):
    """A planted "compile" that scales the head steps' result by 2% (the identity: ok)."""

    def planted(learner, name, mode, backend="inductor"):
        def wrap(fn):
            if fn.__name__ != "_head_steps":
                return fn  # the solve as it is

            def run(*args):
                w, b = fn(*args)
                return w * scale, b

            return run

        learner.compile_with(wrap)

    monkeypatch.setattr(speed, "apply_compile", planted)
    argv = ["--quick", "--learners", "mrml", "--modes", "batched", "--compile", "inductor",
            "--no-memory", "--out", str(tmp_path / "s.csv")]  # fmt: skip
    row = by_key(speed.main(argv))["mrml", "batched", "inductor"]
    assert row["status"] == status and row["seconds"] > 0  # timed either way
    assert 0 < row["compile_noise"] < 1e-4  # float32 rounding at the quick size
    if status == "ok":
        assert row["compile_err"] == 0.0  # the same ops in the same order
    else:
        assert row["compile_err"] > max(1e-4, 10 * row["compile_noise"])
