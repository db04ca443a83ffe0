"""Choices of command-line options as Enums (Typer lists and checks them; a bad value is exit 2)."""

from __future__ import annotations

from enum import Enum

import typer


class Isolation(str, Enum):
    """``--isolation``: each cell in its own process, or inline in this one."""

    process = "process"
    inline = "inline"


class ExecutorChoice(str, Enum):
    """``--executor``: this machine, a Ray cluster, or SLURM (README "Many GPUs and clusters")."""

    local = "local"
    ray = "ray"
    slurm = "slurm"


class DeviceChoice(str, Enum):
    """``--device``: a specific GPU is chosen with ``CUDA_VISIBLE_DEVICES`` or the suite's
    ``device: cuda:N``."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ReportFormat(str, Enum):
    """One of ``--format``'s comma-separated table formats."""

    md = "md"
    tex = "tex"
    csv = "csv"


class PlotsChoice(str, Enum):
    """``memcomp report --plots``: inline SVG (default) or plotly charts (the ``interactive``
    extra) for report.html's main figures."""

    static = "static"
    interactive = "interactive"


def parse_formats(value: str) -> tuple[str, ...]:
    """``"md,tex"`` -> ``("md", "tex")``; an unknown format is a usage error (exit 2)."""
    formats = tuple(f.strip() for f in value.split(",") if f.strip())
    known = [f.value for f in ReportFormat]
    for f in formats:
        if f not in known:
            raise typer.BadParameter(
                f"unknown format {f!r}; use a comma list of {', '.join(known)}",
                param_hint="'--format'",
            )
    return formats
