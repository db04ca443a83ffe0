"""``memcomp verify``: the learner contract checked on tiny float64 models (memcomp.verify)."""

from __future__ import annotations

import time

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import TextTable, esc, styled


@app.command()
@handle_errors
def verify(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="Registered learner name(s)."),
) -> None:
    """Check a learner against memcomp's contract ("gradcheck for meta-learners"): meta-gradient
    vs finite differences (exact learners) or its error against the exact hypergradient
    (approximate ones), sequential == batched == chunked, determinism, gradients only on the
    meta-parameters, no NaN on a badly scaled task, no host sync in the inner loop. Tiny models,
    CPU, float64. Exit 1 if a check fails.

    Examples:

      memcomp verify mrml

      memcomp verify mine --plugin mine
    """
    from memcomp.learners import LEARNERS
    from memcomp.verify import verify as run_verify

    for name in names:
        LEARNERS.get(name)  # an unknown name is exit 2 before anything runs
    failed = 0
    for name in names:
        start = time.perf_counter()
        checks = run_verify(name)
        secs = time.perf_counter() - start
        title = f"memcomp verify {name} ({LEARNERS.get(name).source}, {secs:.0f} s)"
        table = TextTable(title=title)
        table.add_column("check")
        table.add_column("result")
        table.add_column("measured error", justify="right")
        table.add_column("note", overflow="fold")
        style = {"pass": "green", "FAIL": "bold red", "skip": "dim", "approx": "yellow"}
        for c in checks:
            err = "" if c.error is None else f"{c.error:.1e}"
            table.add_row(c.name, styled(c.status, style[c.status]), err, str(c.note))
        console.print(table)
        bad = [c for c in checks if c.failed]
        failed += bool(bad)
        verdict = f"[red]{len(bad)} of {len(checks)} checks failed[/]" if bad else "[green]ok[/]"
        console.print(f"{esc(name)}: {verdict}", highlight=False)
    raise typer.Exit(1 if failed else 0)
