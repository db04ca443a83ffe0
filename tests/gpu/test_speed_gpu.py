"""benchmarks/speed.py on CUDA (issue 17 point 4): peers checked in float64 on the GPU, and a
quick run of every row type on the GPU (floor, both modes, a peer) ending with its table."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def speed(monkeypatch):
    path = ROOT / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_speed_gpu2", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("inner_steps", [1, 5, 20])
def test_higher_agrees_with_memcomp_in_float64_on_the_gpu(cuda, speed, inner_steps):
    pytest.importorskip("higher", reason="the `bench` extra (pip install higher)")
    cfg = replace(speed.Config(), ways=5, shots=5, queries=5, meta_batch=2,
                  inner_steps=inner_steps)  # fmt: skip
    shape = speed.SHAPES["cifar"]  # the paper's CIFAR shape, 2 tasks
    check = speed.check_peer(speed.load_peers()["higher-maml"], shape, cfg, cuda)
    assert check["status"] == "ok", check
    assert check["peer_err_float64"] <= speed.PEER_TOL
    assert math.isfinite(check["peer_err_run"])  # float32: recorded, whatever it is


def test_quick_benchmark_on_the_gpu(cuda, speed, tmp_path):
    rows = speed.main(["--quick", "--device", "cuda", "--learners", "maml", "mrml", "--peers",
                       "--out", str(tmp_path / "speed.csv")])  # fmt: skip
    by = {(r["learner"], r["mode"]): r for r in rows}
    for key in [("floor", "-"), ("maml", "sequential"), ("maml", "batched"), ("mrml", "batched")]:
        assert by[key]["status"] == "ok" and by[key]["seconds"] > 0 and by[key]["peak_mb"] > 0
        assert by[key]["device"] == "cuda"
    peer = by[("higher-maml", "peer")]
    if peer["status"] == "error":
        assert "higher" in peer["peer_check"]  # the bench extra is not installed
    else:
        assert peer["peer_check"] == "ok" and peer["seconds"] > 0


def test_op_counts_and_a_cuda_graph_row_on_the_gpu(cuda, speed, tmp_path):
    """--opcount on CUDA (issue 18): CUDA kernels and host launches are counted, and mrml with
    compile: graphs (head steps and solve replayed) equals eager and launches less from the host."""
    rows = speed.main(["--quick", "--device", "cuda", "--learners", "mrml", "--modes", "batched",
                       "--compile", "none", "graphs", "--opcount", "--no-memory",
                       "--out", str(tmp_path / "speed.csv")])  # fmt: skip
    by = {(r["learner"], r["compile"]): r for r in rows}
    eager, graphs = by[("mrml", "none")], by[("mrml", "graphs")]
    assert graphs["status"] == "ok" and graphs["seconds"] > 0, graphs
    assert graphs["compile_err"] <= max(1e-4, 10 * graphs["compile_noise"])
    for r in (by[("floor", "none")], eager, graphs):
        assert isinstance(r["cuda_kernels"], int) and r["cuda_kernels"] > 0, r
        assert isinstance(r["cuda_launches"], int) and r["cuda_launches"] > 0, r
    assert graphs["cuda_launches"] < eager["cuda_launches"]  # one graph launch per replay
    assert graphs["ops_per_iter"] < eager["ops_per_iter"]  # a replay dispatches only copies
    assert eager["compiled_kernels"] == graphs["compiled_kernels"] == 0  # nothing generated
