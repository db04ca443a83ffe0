"""Display helpers shared by commands: user text made safe for Rich (:func:`esc`,
:class:`TextTable`), component labels and the cells table.

Every string that comes from the user (paths, suite and learner names, labels, errors, plugin
summaries) goes to Rich through :func:`esc` or as a :class:`rich.text.Text`: Rich would read
``[/]`` or ``[red]`` in it as markup and fail (``MarkupError``) or restyle it.
"""

from __future__ import annotations

import shlex
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text


def esc(value: object) -> str:
    """``value`` as Rich markup that prints it literally (``[/]`` in a path stays text)."""
    return escape(str(value))


def shell_arg(value: object) -> str:
    """``value`` as one shell word (``shlex.quote``), escaped for Rich: a command to copy."""
    return esc(shlex.quote(str(value)))


def styled(value: object, style: str) -> Text:
    """``value`` as literal text in ``style`` (a table cell or line with colour)."""
    return Text(str(value), style=style)


def _text(value: Any, style: str) -> Any:
    return Text(value, style=style) if isinstance(value, str) else value


class TextTable(Table):
    """A Rich table whose string cells, title and caption print literally, never as markup;
    a styled cell is a :class:`rich.text.Text` (:func:`styled`)."""

    def __init__(self, *headers: Any, title: Any = None, caption: Any = None, **kw: Any) -> None:
        super().__init__(
            *headers,
            title=_text(title, "table.title"),
            caption=_text(caption, "table.caption"),
            **kw,
        )

    def add_row(self, *renderables: Any, **kw: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kw)


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
    table = TextTable(title=title, show_lines=False)
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
