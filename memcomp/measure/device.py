"""THE device resolver: parse a device name, check it exists, name the hardware.

Every command goes through here (``run``/``validate`` preflight, the cell runner, ``check``), so a
device is accepted or refused with the same words everywhere.
"""

from __future__ import annotations

import platform

import torch

from memcomp.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> tuple[torch.device | None, str | None]:
    """The device named ``name`` (auto|cpu|cuda|cuda:N) or why it cannot be used."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return None, f"must be auto, cpu, cuda or cuda:N (got {name!r})"
    if dev.type == "cpu":
        return dev, None
    if dev.type != "cuda":
        return None, f"must be auto, cpu, cuda or cuda:N (got {name!r})"
    if not torch.cuda.is_available():
        return None, f"{name!r} requested but no CUDA GPU is available (use cpu or auto)"
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        return None, f"{name!r} does not exist: this machine has {n} CUDA device(s)"
    return dev, None


def resolve_device(name: str) -> torch.device:
    """The device named ``name``; an :class:`~memcomp.errors.InputError` (exit 2) when unusable."""
    dev, why = check_device(name)
    if dev is None:
        raise InputError(f"device: {why}")
    return dev


def device_name(device: torch.device) -> str:
    """The hardware behind ``device`` (GPU model, or the CPU's processor name)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"
