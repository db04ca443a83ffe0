"""How much CUDA memory this process may hold: the ``--memory-limit`` cap and the free memory.

``--memory-limit MB`` is applied as a per-process memory fraction of the caching allocator
(:func:`memcomp.exec.child.apply_memory_limit`), which records the cap here
(:func:`set_memory_limit`) so that ``execution: auto`` plans its task chunks inside it
(:mod:`memcomp.engine.choose`). The cap is process-wide state, as the fraction itself is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MB = 2**20
_LIMIT_MB: float | None = None


def cuda_index(device: torch.device | str | int | None) -> int:
    """The CUDA device index of ``device``: ``cuda`` (no index) is the current device.

    ``torch.cuda.set_per_process_memory_fraction`` and friends need an index; ``torch.device
    ('cuda')`` has none (``ValueError: Expected a torch.device with a specified index``).
    """
    if isinstance(device, int):
        return device
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"not a CUDA device: {dev}")
    return torch.cuda.current_device() if dev.index is None else dev.index


def set_memory_limit(limit_mb: float | None) -> None:
    """Record this process's CUDA memory cap in MB (None: no cap)."""
    global _LIMIT_MB
    _LIMIT_MB = limit_mb


def memory_limit_mb() -> float | None:
    """This process's CUDA memory cap in MB (``--memory-limit``), None when there is none."""
    return _LIMIT_MB


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes this process may hold on the device in all, and where the number comes from."""

    bytes: int
    source: str

    @property
    def mb(self) -> float:
        return self.bytes / MB


def cuda_budget(device: torch.device | str) -> MemoryBudget:
    """What this process may hold on ``device``: what it holds already (reserved by its caching
    allocator) plus the device's free memory (``torch.cuda.mem_get_info``), capped by
    ``--memory-limit`` when one is set."""
    index = cuda_index(device)
    free, _total = torch.cuda.mem_get_info(index)
    reserved = torch.cuda.memory_reserved(index)
    available = int(free + reserved)
    limit = memory_limit_mb()
    if limit is not None and limit * MB < available:
        return MemoryBudget(int(limit * MB), f"--memory-limit {limit:g} MB")
    return MemoryBudget(available, f"free CUDA memory {available / MB:.0f} MB (mem_get_info)")
