"""The inline executor: cells one after another in this process, sharing one data cache
(``--isolation inline``; :func:`memcomp.exec.processes.local_executor` picks it)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from memcomp.config.cells import Cell
from memcomp.config.run_options import RunOptions
from memcomp.engine import DataCache, run_cell
from memcomp.exec.child import apply_memory_limit
from memcomp.exec.executor import Executor, RunContext
from memcomp.exec.options import checkpoint_path
from memcomp.exec.progress import CellProgress


class InlineExecutor(Executor):
    """Every cell in this process, in order (the datasets preflight loaded are reused)."""

    def prepare(self, device: torch.device) -> RunOptions:
        """Refuses ``--gpus`` (pinning needs child processes)."""
        from memcomp.exec.gpus import pinned

        self.options = pinned(self.options, device)
        return self.options

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        opts, device = self.options, ctx.device
        apply_memory_limit(device, opts.memory_limit_mb)
        datasets = opts.datasets if opts.datasets is not None else DataCache()
        threads, before = opts.cell_threads(), torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            for i, cell in enumerate(cells):
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                outcome = run_cell(
                    cell, device, CellProgress(ctx.emit, cell), opts.memory_source,
                    checkpoint=checkpoint_path(ctx.results, cell), datasets=datasets,
                )  # fmt: skip
                ctx.record(i, outcome)
        finally:
            torch.set_num_threads(before)  # inline cells share this process: leave it as it was
