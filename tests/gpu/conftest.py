"""GPU tests (``pytest tests/gpu`` on a machine with a CUDA GPU; rationale: README "Tests and CI").

Every test in this folder is marked ``gpu`` and, where no CUDA GPU is visible, skipped with the
reason, so CI (no GPU) collects and skips them. Each test is small (seconds on an H200) and
leaves the GPU as it found it: the cache is emptied and the peak statistics reset around it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # tests/: fake_learners and the helpers of the CPU tests
    sys.path.insert(0, str(HERE.parent))

NO_GPU = "needs a CUDA GPU (torch.cuda.is_available() is False here); run `pytest tests/gpu` on one"


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = None if torch.cuda.is_available() else pytest.mark.skip(reason=NO_GPU)
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if skip is not None:
                item.add_marker(skip)


@pytest.fixture
def cuda() -> Iterator[torch.device]:
    """The first visible GPU, emptied and with fresh peak statistics before and after the test."""
    dev = torch.device("cuda", 0)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    yield dev
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)


@pytest.fixture(autouse=True)
def _one_thread():
    """CPU-side work (the CPU estimate some tests compare with) on one thread, as in CI."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
