"""Display helpers shared by commands: component labels and the cells table."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def short_label(kind: str, comp: Any) -> str:
    """``name(k=v, ...)`` listing only parameters that differ from the registered defaults."""
    from memcomp.backbones import BACKBONES
    from memcomp.data import DATASETS
    from memcomp.learners import LEARNERS

    reg = {"learner": LEARNERS, "dataset": DATASETS, "backbone": BACKBONES}[kind]
    try:
        defaults = reg.get(comp.name).params().model_dump()
    except Exception:  # noqa: BLE001 - a component without defaults shows everything
        defaults = {}
    diff = {k: v for k, v in comp.params.items() if defaults.get(k, object()) != v}
    inner = ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))
    return f"{comp.name}({inner})" if inner else comp.name


def cells_table(cells: list[Any], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("cell id")
    table.add_column("learner", overflow="fold")
    table.add_column("dataset / setting")
    table.add_column("backbone")
    table.add_column("seed", justify="right")
    for i, c in enumerate(cells, 1):
        s = c.setting
        table.add_row(
            str(i),
            c.id,
            short_label("learner", c.learner),
            f"{short_label('dataset', c.dataset)} {s.ways}w{s.shots}s q{s.queries}",
            short_label("backbone", c.backbone),
            str(c.seed),
        )
    return table
