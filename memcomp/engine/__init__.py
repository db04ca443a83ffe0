"""One cell, start to finish: build (setup), train (train, checkpoint), evaluate, results row."""

from memcomp.engine.cell import CellOutcome, measure_cell_memory, run_cell
from memcomp.engine.row import TEST_SEED, VAL_SEED, base_row, one_line
from memcomp.engine.setup import CellSetup, DataCache, setup_cell
from memcomp.engine.train import DivergedError, Progress, meta_step

__all__ = [
    "TEST_SEED", "VAL_SEED", "CellOutcome", "CellSetup", "DataCache", "DivergedError",
    "Progress", "base_row", "measure_cell_memory", "meta_step", "one_line", "run_cell",
    "setup_cell",
]  # fmt: skip
