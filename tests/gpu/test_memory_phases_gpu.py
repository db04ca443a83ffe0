"""CUDA peak memory per region and phase (memcomp.measure.memory, source ``cuda``): positive
phases that nest as the algorithm does, peaks reset before every region and phase, and the CPU
estimate within the calibrated few percent of CUDA at a calibration shape."""

from __future__ import annotations

import pytest
import torch
from helpers_gpu import cell

from memcomp.engine import measure_cell_memory
from memcomp.measure.memory import MB, MemoryMeter
from memcomp.measure.phases import phase

N_MB = 8  # a tensor of exactly 8 MiB: the caching allocator counts it as 8 MiB


def mib(n: int, device: torch.device) -> torch.Tensor:
    return torch.empty(n * MB // 4, dtype=torch.float32, device=device)


def test_peaks_are_reset_before_each_region_and_phase(cuda):
    big = mib(256, cuda)  # a high-water mark left before the region...
    del big  # ...and freed: a region that does not reset would report it
    meter = MemoryMeter(cuda, "cuda")
    keep = []
    with meter.measure():
        with phase("first"):
            tmp = mib(4 * N_MB, cuda)
            del tmp
        with phase("second"):
            keep.append(mib(N_MB, cuda))
    res = meter.result()
    assert res.source == "cuda" and res.device == "cuda:0"
    assert res.peak_mb == pytest.approx(4 * N_MB, abs=0.01)  # not 256
    assert res.phases["first"] == pytest.approx(4 * N_MB, abs=0.01)
    assert res.phases["second"] == pytest.approx(N_MB, abs=0.01)  # not the first phase's 32
    assert res.baseline_mb is not None and res.reserved_mb >= res.peak_mb
    second = MemoryMeter(cuda, "cuda")
    with second.measure():
        keep.append(mib(2, cuda))
    assert second.result().peak_mb == pytest.approx(2, abs=0.01)  # the 8 MiB held is baseline
    assert second.result().baseline_mb >= N_MB


def test_maml_phases_on_cuda_nest_and_match_the_cpu_estimate(cuda):
    # 32 px Conv4-64, one of the calibration shapes (estimate / CUDA 0.952 .. 1.004 on an H200)
    c = cell({"name": "maml", "inner_steps": 5, "inner_lr": 0.01, "execution": "sequential"},
             image_size=32, hidden=64)  # fmt: skip
    got = measure_cell_memory(c, device="cuda", iterations=1, source="cuda")
    assert got.source == "cuda" and got.peak_mb > 0
    phases = got.phases
    assert set(phases) >= {"inner", "hypergrad", "outer_update"}
    assert all(v > 0 for v in phases.values()), phases
    assert phases["inner"] < got.peak_mb  # the backward through the inner loop adds to it
    assert phases["hypergrad"] <= got.peak_mb + 1e-6
    est = measure_cell_memory(c, device="cpu", iterations=1, source="cpu-estimate")
    assert 0.9 <= est.peak_mb / got.peak_mb <= 1.1, (est.peak_mb, got.peak_mb)


def test_a_cell_row_on_cuda_says_how_it_was_measured(cuda):
    from memcomp.engine.cell import run_cell

    out = run_cell(cell({"name": "mrml", "inner_steps": 2, "cg_steps": 2}), cuda)
    row = out.row
    assert row["status"] == "ok", row.get("error")
    assert row["mem_source"] == "cuda" and row["device"] == "cuda"
    assert row["peak_mem_mb"] > 0 and row["mem_reserved_mb"] >= row["peak_mem_mb"]
    assert row["mem_inner_mb"] > 0 and row["mem_hypergrad_mb"] > 0
    assert row["device_name"] == torch.cuda.get_device_name(0)  # the card is named
