"""A cell's arithmetic precision, applied and read back (docs/design.md section 10).

:func:`precision_flags` sets, for the time of a ``with`` block, torch's process-wide flags a
precision needs (TF32 in cuBLAS matmuls and cuDNN, the float32 matmul precision) and the cuDNN
``benchmark`` / ``deterministic`` switches, then restores what was there. :class:`Autocast` is the
context the meta-steps and evaluations run in (``torch.autocast(bfloat16)`` for ``bf16``, nothing
otherwise); it records the autocast dtype it saw in force. :func:`capture_flags` reads the flags
back from torch, so a results row says what WAS in force, not what was asked for.

The meaning of each precision (weights' dtype, TF32 switches, autocast dtype) is the torch-free
table ``memcomp.config.settings.PRECISION_MODES``; the caller passes one of its entries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

# precision modes that need a CUDA device (and one of compute capability 8.0, Ampere, or newer)
NEEDS_AMPERE = {"tf32": "TF32 tensor cores", "bf16": "bfloat16 support"}


@dataclass(frozen=True)
class PrecisionPlan:
    """What a cell sets: one ``PRECISION_MODES`` entry and the two cuDNN switches."""

    precision: str
    dtype: str  # weights' dtype: float32 or float64
    matmul_tf32: bool
    cudnn_tf32: bool
    float32_matmul_precision: str  # highest | high | medium
    autocast_dtype: str  # bfloat16 | none
    cudnn_benchmark: bool = False
    cudnn_deterministic: bool = False

    @classmethod
    def from_flags(cls, flags: dict[str, Any]) -> PrecisionPlan:
        """From ``memcomp.config.settings.planned_flags`` (or any dict with these keys)."""
        return cls(**{k: flags[k] for k in cls.__dataclass_fields__})

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


def capture_flags() -> dict[str, Any]:
    """The precision flags in force in this process, read from torch."""
    return {
        "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
    }


def _set(flags: dict[str, Any]) -> None:
    # the matmul precision first: it also sets cuBLAS's allow_tf32 ("high" -> True)
    torch.set_float32_matmul_precision(flags["float32_matmul_precision"])
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]


@contextlib.contextmanager
def precision_flags(plan: PrecisionPlan) -> Iterator[dict[str, Any]]:
    """Set ``plan``'s flags inside the block and yield them as read back from torch; restore
    the previous flags afterwards (inline cells and library callers keep their own)."""
    before = capture_flags()
    _set(
        {
            "float32_matmul_precision": plan.float32_matmul_precision,
            "matmul_tf32": plan.matmul_tf32,
            "cudnn_tf32": plan.cudnn_tf32,
            "cudnn_benchmark": plan.cudnn_benchmark,
            "cudnn_deterministic": plan.cudnn_deterministic,
        }
    )
    try:
        yield capture_flags()
    finally:
        _set(before)


class Autocast:
    """``with autocast():`` runs a region in the plan's autocast dtype (bf16: ``torch.autocast``
    with bfloat16, float32 master weights untouched) or unchanged; ``seen`` is the autocast
    dtype found in force inside the last region (``"none"`` when autocast was off)."""

    def __init__(self, plan: PrecisionPlan, device: torch.device) -> None:
        self.device_type = torch.device(device).type
        self.dtype = torch.bfloat16 if plan.autocast_dtype == "bfloat16" else None
        self.seen = "none"

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        ctx: Any = (
            torch.autocast(self.device_type, dtype=self.dtype)
            if self.dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            on = torch.is_autocast_enabled(self.device_type)
            dtype = torch.get_autocast_dtype(self.device_type)
            self.seen = str(dtype).removeprefix("torch.") if on else "none"
            yield


def unsupported(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (None: it can). TF32 exists only on CUDA GPUs
    of compute capability 8.0 or newer: on the CPU ``torch.set_float32_matmul_precision("high")``
    only sets oneDNN's matmul mode to "tf32", which changed no result on the CPUs tried
    (docs/design.md section 10), so a tf32 cell there would be a float32 cell under another name.
    bf16 runs on every CPU and on CUDA GPUs with bfloat16 support."""
    device = torch.device(device)
    if precision == "tf32" and device.type != "cuda":
        return (
            f"precision tf32 is CUDA only (TF32 tensor cores); on {device.type} it would be "
            "float32: run it with --device cuda, or use float32"
        )
    if device.type == "cuda" and precision in NEEDS_AMPERE:
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        if major < 8:
            return (
                f"precision {precision} needs {NEEDS_AMPERE[precision]} (compute capability "
                f"8.0+); this GPU is {major}.{minor}: use float32"
            )
    return None


__all__ = [
    "Autocast",
    "PrecisionPlan",
    "capture_flags",
    "precision_flags",
    "unsupported",
]
