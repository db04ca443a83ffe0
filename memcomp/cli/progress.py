"""What ``memcomp run`` draws: progress bars while cells run, the summary table after."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from memcomp.cli.common import TextTable, esc, short_label, styled
from memcomp.config.cells import Cell
from memcomp.results.schema import param_column

if TYPE_CHECKING:
    from memcomp.engine import CellOutcome


class RichProgress:
    """Cells done / total, and one bar per running cell with its last validation accuracy."""

    def __init__(self, progress: Progress, total_cells: int) -> None:
        self.p = progress
        self.cells: TaskID = progress.add_task("cells", total=total_cells, info="")
        self.bars: dict[str, TaskID] = {}

    def cell_started(self, cell: Cell, iterations: int) -> None:
        if cell.id in self.bars:
            self.p.remove_task(self.bars.pop(cell.id))
        self.bars[cell.id] = self.p.add_task(
            esc(f"  {cell.learner.label()} s{cell.seed}"), total=iterations, info=""
        )

    def cell_iteration(self, cell: Cell, iteration: int, val_acc: float | None) -> None:
        bar = self.bars.get(cell.id)
        if bar is None:
            return
        info = {"info": f"val {val_acc:5.1f}%"} if val_acc is not None else {}
        self.p.update(bar, completed=iteration, **info)

    def cell_done(self, outcome: CellOutcome) -> None:
        bar = self.bars.pop(str(outcome.row.get("cell_id")), None)
        if bar is not None:
            self.p.remove_task(bar)
        if not outcome.ok:
            r = outcome.row
            self.p.console.print(
                f"[red]{esc(r.get('status'))}[/] {esc(r.get('label', r.get('cell_id')))}: "
                f"{esc(str(r.get('error', ''))[:200])}",
                highlight=False,
            )
        self.p.advance(self.cells)


def _learner_label(row: dict) -> str:
    """Learner name with the parameters that differ from its defaults, e.g. ``maml(K=3)``."""
    from memcomp.config.cells import Component
    from memcomp.learners import LEARNERS

    name = row.get("learner", "?")
    try:
        keys = LEARNERS.get(name).params.model_fields
    except Exception:  # noqa: BLE001 - unknown learner in an old row: show the name only
        return str(name)
    params = {}
    for k in keys:
        col = param_column("learner", k)
        if col in row:
            params[k] = None if _missing(row[col]) else row[col]
    return short_label("learner", Component(name, params))


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def summary_table(outcomes: list[CellOutcome]) -> Table:
    sources = sorted({str(o.row.get("mem_source")) for o in outcomes if o.row.get("mem_source")})
    t = TextTable(
        title="summary",
        caption=f"peak MB above baseline, source: {', '.join(sources) or '-'}; "
        "cell ids and all columns in runs.csv",
    )
    t.add_column("learner", overflow="fold", ratio=3)
    t.add_column("dataset", overflow="fold", ratio=1)
    t.add_column("status", overflow="fold", ratio=2)
    t.add_column("test acc %", justify="right", no_wrap=True)
    t.add_column("peak MB", justify="right", no_wrap=True)
    t.add_column("s/iter", justify="right", no_wrap=True)
    for o in outcomes:
        r = o.row
        acc = (
            f"{r['test_acc']:.2f} ± {r['test_ci95']:.2f}" if r.get("test_acc") is not None else "-"
        )
        mem = f"{r['peak_mem_mb']:.1f}" if r.get("peak_mem_mb") is not None else "-"
        spi = f"{r['sec_per_iter']:.3f}" if r.get("sec_per_iter") is not None else "-"
        error = f": {str(r.get('error', ''))[:60]}"
        status = r["status"] if o.ok else Text.assemble(styled(r["status"], "red"), error)
        data = f"{r.get('dataset')} {r.get('ways')}w{r.get('shots')}s"
        t.add_row(_learner_label(r), data, status, acc, mem, spi)
    return t
