"""The inline scheduler: cells one after another in this process, sharing one data cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from memcomp.config.cells import Cell
from memcomp.engine import DataCache, run_cell
from memcomp.exec.child import apply_memory_limit
from memcomp.exec.options import BoundProgress, RunOptions, SuiteProgress, checkpoint_path
from memcomp.results.store import ResultsDir


def run_inline(
    cells: Sequence[Cell],
    device: torch.device,
    progress: SuiteProgress | None,
    opts: RunOptions,
    results: ResultsDir,
    record: Callable[..., None],
) -> None:
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
            bound = BoundProgress(progress, cell) if progress else None
            outcome = run_cell(
                cell, device, bound, opts.memory_source,
                checkpoint=checkpoint_path(results, cell), datasets=datasets,
            )  # fmt: skip
            record(i, outcome)
    finally:
        torch.set_num_threads(before)  # inline cells share this process: leave it as it was
