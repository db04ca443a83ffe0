"""Counting host synchronisations (a device value read back by the host) per memory phase."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

from memcomp.measure.phases import active_meter


class HostReads(TorchDispatchMode):
    """Counts ops that read a tensor value back to the host (``.item()``, ``bool(t)``), by the
    phase (:func:`memcomp.measure.phases.phase`) they happen in (``""`` outside any phase)."""

    READS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::item", "aten::equal"}

    def __init__(self) -> None:
        super().__init__()
        self.by_phase: Counter[str] = Counter()
        self._stack: list[str] = []

    @property
    def count(self) -> int:
        return sum(self.by_phase.values())

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        self._stack.append(name)
        try:
            yield
        finally:
            self._stack.pop()

    @contextlib.contextmanager
    def watching_phases(self) -> Iterator[HostReads]:
        """Enter the mode and follow the learner's phase marks."""
        with active_meter(self._phase), self:
            yield self

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func._schema.name in self.READS:
            self.by_phase[self._stack[-1] if self._stack else ""] += 1
        return func(*args, **(kwargs or {}))
