"""A real CUDA out-of-memory inside a cell is a row with ``status=oom`` and the memory it reached
(memcomp.engine.cell.run_cell), not an exception; the GPU is usable again afterwards."""

from __future__ import annotations

import pytest
import torch
from helpers_gpu import cell

from memcomp.engine.cell import run_cell

CAP_MB = 768  # the process may hold this much; second-order MAML below needs about 2.9 GB


@pytest.fixture
def capped(cuda):
    """The caching allocator of this process limited to CAP_MB (the device given by index)."""
    total = torch.cuda.get_device_properties(cuda).total_memory
    torch.cuda.set_per_process_memory_fraction(CAP_MB * 2**20 / total, cuda.index)
    yield cuda
    torch.cuda.set_per_process_memory_fraction(1.0, cuda.index)


def test_a_real_cuda_oom_is_a_row_with_the_memory_reached(capped):
    # maml K=20 at the paper's 84 px Conv4-32 shape, one task: 2921 MB by the CPU estimate,
    # growing about 136 MB per inner step, so it runs out of the 768 MB cap within a few steps
    c = cell({"name": "maml", "inner_steps": 20, "inner_lr": 0.01, "execution": "sequential"},
             image_size=84, hidden=32)  # fmt: skip
    out = run_cell(c, capped)
    row = out.row
    assert row["status"] == "oom", row.get("error")
    assert "out of memory" in row["error"].lower()
    assert CAP_MB / 2 <= row["peak_mem_mb"] <= CAP_MB + 1  # reached most of the cap, no more
    assert row["device"] == "cuda"
    # the failure freed what the cell held: a small cell runs on the same GPU right after
    torch.cuda.set_per_process_memory_fraction(1.0, capped.index)
    torch.cuda.empty_cache()
    ok = run_cell(cell({"name": "mrml", "inner_steps": 2, "cg_steps": 2}), capped)
    assert ok.row["status"] == "ok", ok.row.get("error")
