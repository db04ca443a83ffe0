"""CUDA synchronisation in timing (memcomp.measure.timing): a step's duration covers its queued
GPU work, not only the launches, in the step timer and in benchmarks/speed.py's measure."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch

from memcomp.measure.timing import StepTimer

ROOT = Path(__file__).resolve().parents[2]


def gpu_work(device: torch.device, n: int = 40):
    """Queue ``n`` 4096 x 4096 float32 matrix products (tens of ms on an H200): the launch
    itself returns in well under a millisecond."""
    a = torch.randn(4096, 4096, device=device)
    b = torch.randn(4096, 4096, device=device)

    def step() -> None:
        c = a
        for _ in range(n):
            c = torch.mm(c, b).div_(64.0)

    return step


def event_ms(step, device: torch.device) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    step()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end)


def test_step_timer_waits_for_the_gpu(cuda):
    step = gpu_work(cuda)
    step()  # warm-up (cuBLAS handles, kernels)
    gpu_ms = event_ms(step, cuda)
    assert gpu_ms > 5, gpu_ms  # enough work to tell a synchronised clock from a launch clock
    torch.cuda.synchronize(cuda)
    t0 = time.perf_counter()
    step()
    launch_ms = 1000 * (time.perf_counter() - t0)  # what an unsynchronised clock would read
    torch.cuda.synchronize(cuda)
    timer = StepTimer(cuda, warmup=0)
    for _ in range(3):
        timer.start()
        step()
        timer.stop()
    assert 1000 * timer.median >= 0.9 * gpu_ms, (timer.durations, gpu_ms, launch_ms)
    assert launch_ms < 0.5 * gpu_ms  # so without the synchronisation this test would fail


def test_speed_benchmark_measure_is_synchronised(cuda, monkeypatch):
    path = ROOT / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_speed_gpu", path)
    speed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, speed)
    spec.loader.exec_module(speed)
    step = gpu_work(cuda)
    step()
    gpu_ms = event_ms(step, cuda)
    cfg = speed.Config(iters=3, warmup=1, memory=True)
    seconds, peak = speed.measure(step, cfg, cuda, resident=[])
    assert 1000 * seconds >= 0.9 * gpu_ms
    assert peak == pytest.approx(4096 * 4096 * 4 * 2 / 2**20, rel=0.5)  # c and its successor
