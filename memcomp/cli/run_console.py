"""What ``memcomp run`` prints while a run runs: its notes and header once the folder is open,
then the progress bars (:class:`memcomp.cli.progress.RichProgress`), fed by the run's one
progress-event type (:class:`memcomp.exec.progress.ProgressEvent`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from memcomp.cli.progress import RichProgress
from memcomp.exec.progress import ProgressEvent, RunProgress

if TYPE_CHECKING:
    from memcomp.exec.api import PlannedRun


class ConsoleRun(RunProgress):
    """Prints a run's start and draws its cells' progress; :meth:`close` ends the bars."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.bars: RichProgress | None = None

    def run_started(self, run: PlannedRun) -> None:
        c, o = self.console, run.options
        for note in run.notes:
            prefix = "" if note.startswith("resuming ") else "[yellow]note[/]: "
            c.print(prefix + escape(note), highlight=False)
        if o.memory_limit_mb is not None and run.device.type != "cuda":
            c.print(f"[yellow]note[/]: --memory-limit {o.memory_limit_mb:g} MB is ignored on "
                    f"{run.device.type} (it caps CUDA memory only)")  # fmt: skip
        if o.jobs > 1:
            c.print(f"[yellow]note[/]: {o.jobs} cells run at once and share the device: "
                    "their timings disturb each other (peak memory is per process)")  # fmt: skip
        assert run.results is not None
        c.print(f"running {len(run.todo)} cells of suite [bold]{escape(run.suite.name)}[/] on "
                f"{run.device} ({o.isolation}) -> {escape(str(run.results.path))}")  # fmt: skip
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=c, transient=False,
        )  # fmt: skip
        self.progress.start()
        self.bars = RichProgress(self.progress, len(run.todo))

    def __call__(self, event: ProgressEvent) -> None:
        bars = self.bars
        if bars is None:
            return
        if event.kind == "started":
            bars.cell_started(event.cell, int(event.iterations or 0))
        elif event.kind == "iteration":
            bars.cell_iteration(event.cell, int(event.iteration or 0), event.val_acc)
        elif event.outcome is not None:
            bars.cell_done(event.outcome)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
