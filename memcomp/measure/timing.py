"""Honest wall-clock timing: CUDA work is synchronised before the clock is read."""

from __future__ import annotations

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Collects synchronised durations of repeated steps; ``median`` skips warm-up steps."""

    def __init__(self, device: torch.device, warmup: int = 1) -> None:
        self.device = device
        self.warmup = warmup
        self.durations: list[float] = []
        self._t0 = 0.0

    def start(self) -> None:
        sync(self.device)
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        sync(self.device)
        dt = time.perf_counter() - self._t0
        self.durations.append(dt)
        return dt

    @property
    def median(self) -> float | None:
        kept = self.durations[self.warmup :] or self.durations
        return statistics.median(kept) if kept else None
