"""``memcomp diagnose``: every learner's hypergradient error against the exact one."""

from __future__ import annotations

from pathlib import Path

import typer

from memcomp.cli.app import app, handle_errors


@app.command()
@handle_errors
def diagnose(
    out: Path = typer.Option(Path("results/diagnose"), "--out", help="Output folder."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed calls per configuration."),
) -> None:
    """Hypergradient error of every learner against the exact hypergradient (CSV and figure).

    Example: memcomp diagnose --out results/diagnose
    """
    from memcomp.diagnose.__main__ import main as diagnose_main

    diagnose_main(["--out", str(out), "--repeats", str(repeats)])
