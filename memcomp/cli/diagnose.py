"""``memcomp diagnose``: every learner's hypergradient error against the exact one, and its
meta-gradient's rounding error by precision."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from memcomp.cli.app import app, handle_errors
from memcomp.cli.options import DeviceChoice
from memcomp.errors import InputError
from memcomp.fsutil import dangling_link_problem


class Sweep(str, Enum):
    """``--sweep``: which diagnostics to run."""

    all = "all"
    hypergrad = "hypergrad"
    rounding = "rounding"


@app.command()
@handle_errors
def diagnose(
    out: Path = typer.Option(Path("results/diagnose"), "--out", help="Output folder."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed calls per configuration."),
    sweep: Sweep = typer.Option(
        Sweep.all,
        "--sweep",
        help="hypergrad: error against the exact hypergradient (float64); rounding: every "
        "learner's float32/tf32/bf16 meta-gradient against its float64 one; all: both.",
    ),
    device: DeviceChoice = typer.Option(
        DeviceChoice.cpu, "--device", help="Where the rounding rows run (tf32 needs cuda)."
    ),
) -> None:
    """Hypergradient error of every learner against the exact hypergradient, and the rounding
    error of every learner's meta-gradient by precision (CSV and figures).

    Examples: memcomp diagnose --out results/diagnose;
    memcomp diagnose --sweep rounding --device cuda --out results/diagnose-gpu
    """
    from memcomp.diagnose.__main__ import main as diagnose_main

    link = dangling_link_problem(out)
    if link:
        raise InputError(f"--out {out}: {link}")

    diagnose_main(
        [
            "--out",
            str(out),
            "--repeats",
            str(repeats),
            "--sweep",
            sweep.value,
            "--device",
            device.value,
        ]
    )
