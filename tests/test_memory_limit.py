"""``--memory-limit`` on CUDA, tested on the CPU with ``torch.cuda`` mocked.

The fakes check their device argument exactly as torch does (``_get_device_index`` with
``optional=False``), so ``torch.device("cuda")`` (no index) fails in them as on a real GPU:
``ValueError: Expected a torch.device with a specified index or an integer, but got:cuda``.
The real path is tests/gpu/test_memory_limit_gpu.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import torch
from torch.cuda._utils import _get_device_index

from memcomp.exec.child import apply_memory_limit
from memcomp.measure import budget

TOTAL = 80 * 2**30  # an 80 GiB card
MB = 2**20


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """torch.cuda's memory functions on a fake 2-GPU machine whose current device is 1."""
    calls: dict = {"fraction": [], "properties": []}

    def properties(device):  # noqa: ANN001, ANN202
        calls["properties"].append(_get_device_index(device, optional=False))
        return SimpleNamespace(total_memory=TOTAL)

    def set_fraction(fraction, device=None):  # noqa: ANN001, ANN202
        calls["fraction"].append((fraction, _get_device_index(device, optional=False)))

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", set_fraction)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (10_000 * MB, TOTAL))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: 500 * MB)
    yield calls
    budget.set_memory_limit(None)


def test_bare_cuda_device_caps_the_current_device(fake_cuda: dict) -> None:
    """The issue's failure: ``--device cuda --memory-limit 2000`` ended every cell in ValueError."""
    assert apply_memory_limit(torch.device("cuda"), 2000) is None
    assert fake_cuda["properties"] == [1]
    ((fraction, index),) = fake_cuda["fraction"]
    assert index == 1
    assert fraction == pytest.approx(2000 * MB / TOTAL)
    assert budget.memory_limit_mb() == 2000


def test_indexed_device_and_limits_above_the_card(fake_cuda: dict) -> None:
    apply_memory_limit(torch.device("cuda:0"), 10**9)  # more than the card: fraction 1
    assert fake_cuda["fraction"] == [(1.0, 0)]


def test_no_limit_and_cpu_change_nothing(fake_cuda: dict) -> None:
    assert apply_memory_limit(torch.device("cuda"), None) is None
    note = apply_memory_limit(torch.device("cpu"), 2000)
    assert note == "--memory-limit 2000 MB ignored on cpu (CUDA only)"
    assert fake_cuda["fraction"] == [] and budget.memory_limit_mb() is None


def test_cuda_budget_is_free_plus_reserved_capped_by_the_limit(fake_cuda: dict) -> None:
    got = budget.cuda_budget(torch.device("cuda"))
    assert got.bytes == 10_500 * MB and "mem_get_info" in got.source
    apply_memory_limit(torch.device("cuda"), 2000)
    got = budget.cuda_budget("cuda")
    assert (got.bytes, got.source) == (2000 * MB, "--memory-limit 2000 MB")
    apply_memory_limit(torch.device("cuda"), 20_000)  # a cap above what is free: the free memory
    assert budget.cuda_budget("cuda").bytes == 10_500 * MB


def test_cuda_index() -> None:
    assert budget.cuda_index(3) == 3
    assert budget.cuda_index("cuda:2") == 2
    with pytest.raises(ValueError, match="not a CUDA device"):
        budget.cuda_index("cpu")
