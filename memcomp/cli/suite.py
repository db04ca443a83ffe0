"""``memcomp validate``, ``list`` and ``schema``: suites and what is registered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import TextTable, cells_table, esc
from memcomp.errors import InputError


@app.command()
@handle_errors
def validate(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    check_data: bool = typer.Option(
        False, "--check-data", help="Also check datasets, backbones and the device (as `run` does)."
    ),
    no_size_check: bool = typer.Option(
        False, "--no-size-check", help="Accept cells estimated too big to finish."
    ),
) -> None:
    """Check a suite and print the cells it expands to, without running anything.

    Examples:

      memcomp validate suites/quickstart.yaml

      memcomp validate suites/paper-accuracy.yaml --check-data
    """
    from memcomp.config import ConfigError, expand, load_suite
    from memcomp.config.feasible import feasibility_problems
    from memcomp.config.problems import sorted_unique
    from memcomp.config.size import size_problems

    s = load_suite(suite)
    cells = expand(s)
    problems = feasibility_problems(s, cells)
    if not no_size_check:
        big = size_problems(cells)  # the work bound; memory is checked where the run is
        problems = sorted_unique([*problems, *(s.problem(c.where("learners"), m) for c, m in big)])
    if problems:
        raise ConfigError(problems)
    if check_data:
        from memcomp.exec.plan import preflight

        preflight(s, cells, check_data=True, size_check=not no_size_check)
    console.print(cells_table(cells, f"suite {s.name}: {len(cells)} cells"))
    ok = f"[green]ok[/]: {esc(suite)} is valid ({len(cells)} cells)"
    console.print(ok, highlight=False, soft_wrap=True)


@app.command("list")
@handle_errors
def list_(
    what: str = typer.Argument(
        None, help="learners | datasets | backbones | executors (default: all)."
    ),
) -> None:
    """What is registered: one line on each, where it comes from (built-in, or the plugin's
    distribution or module), and its parameters with defaults.

    Examples:

      memcomp list learners

      memcomp list learners --plugin my_pkg.my_learner

      memcomp list executors
    """
    from memcomp.backbones import BACKBONES
    from memcomp.config.executors import EXECUTORS
    from memcomp.data import DATASETS
    from memcomp.learners import LEARNERS
    from memcomp.registry import unknown_name_message

    regs = {"learners": LEARNERS, "datasets": DATASETS, "backbones": BACKBONES}
    regs["executors"] = EXECUTORS
    if what is not None and what not in regs:
        raise InputError(unknown_name_message("category", what, list(regs)))
    for name, reg in regs.items():
        if what not in (None, name):
            continue
        table = TextTable(title=name, show_lines=True)
        table.add_column("name", style="bold")
        table.add_column("summary")
        table.add_column("from")
        table.add_column("parameters (default)")
        for entry in reg:
            params = []
            for pname, f in entry.params.model_fields.items():
                params.append(f"{pname}={f.get_default(call_default_factory=True)!r}")
            table.add_row(entry.name, entry.summary, entry.source, "\n".join(params))
        console.print(table)


@app.command()
@handle_errors
def schema(
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> None:
    """Print the suite JSON Schema (for editor autocompletion).

    Example: memcomp schema --out suite.schema.json
    """
    from memcomp.config import suite_json_schema

    text = json.dumps(suite_json_schema(), indent=2)
    if out:
        out.write_text(text + "\n")
        console.print(f"wrote {esc(out)}", highlight=False)
    else:
        sys.stdout.write(text + "\n")
