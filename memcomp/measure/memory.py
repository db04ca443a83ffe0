"""Peak memory of measured regions (meta-iterations) and of named phases inside them
(rationale: docs/design.md section 6).

Two sources give the same numbers' meaning, "bytes the CUDA caching allocator would report":

``cuda``
    ``torch.cuda.max_memory_allocated`` after a synchronize, with the peak statistics reset at
    every region and phase boundary (the running peak is read first, so nothing is lost).
``cpu-estimate``
    A :class:`~torch.utils._python_dispatch.TorchDispatchMode` that follows tensor *storages*:
    every storage an ATen op creates counts its size (rounded up to 512 bytes like CUDA's
    allocator) from the op that creates it until the storage is freed (detected exactly through
    a weak reference to the storage). It sees the forward and backward ops alike, does not depend
    on pixel values, thread counts or the CPU kernels' private scratch space, and so is identical
    run to run. Chosen by measurement over summing the profiler's ``[memory]`` events
    (``profile_memory=True``): on MAML/FOMAML Conv4 cells (28 px and 84 px, K = 1..10) both give
    the same peaks within 0.1% (e.g. 222.53 vs 222.58 MB for MAML K=5 at 84 px) and the same
    linear growth in K, but the profiler also counts the CPU kernels' private scratch buffers and
    frees of blocks of unknown size, varied by a few hundred bytes between runs, and needs
    post-processing to separate phases; the tracker runs at about 2-4x the plain step time (the
    profiler 1.2-2x). Workspaces that cuDNN/cuBLAS take from the CUDA allocator, and tensors that
    only CUDA kernels save, are not seen: ``benchmarks/calibrate_memory.py`` measures the ratio.
    The first use in a process pays a one-off ~2 s import (``torch._dynamo``, by the mode).

The region's *baseline* is what was allocated when it started: on CUDA ``memory_allocated()``;
with the estimate, the bytes of pre-existing storages the region reads or writes (weights,
optimiser state, task data), plus any objects passed as ``resident``. Peaks are increments above
that baseline; frees of pre-existing storages inside the region lower the running total as they
do on CUDA, for the storages the tracker knows (touched earlier in the region, or ``resident``:
pass the learner and optimiser so that ``zero_grad`` dropping ``.grad`` is seen).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from memcomp.measure.phases import active_meter

SOURCES = ("auto", "cuda", "cpu-estimate", "none")
ALLOC_ROUND = 512  # CUDA caching allocator: every block is a multiple of 512 bytes
MB = 2**20


def round_alloc(nbytes: int) -> int:
    """Bytes the CUDA caching allocator accounts for a request of ``nbytes`` (0 stays 0)."""
    return -(-nbytes // ALLOC_ROUND) * ALLOC_ROUND


def resolve_source(device: torch.device, source: str = "auto") -> str:
    """``auto`` is ``cuda`` on a CUDA device, else ``cpu-estimate``."""
    if source not in SOURCES:
        raise ValueError(f"unknown memory source {source!r} (valid: {', '.join(SOURCES)})")
    if source == "auto":
        return "cuda" if device.type == "cuda" else "cpu-estimate"
    if source == "cuda" and device.type != "cuda":
        raise ValueError(f"memory source 'cuda' needs a CUDA device, got {device}")
    return source


@dataclass
class MemoryResult:
    """Peaks in MB (2**20 bytes); increments are above the measured region's baseline."""

    source: str
    device: str
    peak_mb: float | None = None
    baseline_mb: float | None = None
    reserved_mb: float | None = None
    phases: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Tensors held by a module (parameters, grads, buffers), optimiser, dataclass or container."""
    if isinstance(obj, torch.Tensor):
        yield obj
        if obj.grad is not None:
            yield obj.grad
    elif isinstance(obj, nn.Module):
        for p in obj.parameters():
            yield from _tensors(p)
        yield from obj.buffers()
    elif isinstance(obj, torch.optim.Optimizer):
        for state in obj.state.values():
            yield from _tensors(list(state.values()))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


class StorageTracker(TorchDispatchMode):
    """Live bytes of tensor storages created by ATen ops while the mode is active.

    ``cur`` is the running total (bytes, CUDA-rounded) relative to the moment tracking started;
    frees are found lazily (``sweep``) but always before a new peak is recorded, so ``peak`` is
    exact at op granularity. ``baseline`` sums the pre-existing storages seen.
    """

    def __init__(self, device_type: str) -> None:
        super().__init__()
        self.device_type = device_type
        self.new: dict[int, tuple[StorageWeakRef, int]] = {}
        self.pre: dict[int, tuple[StorageWeakRef, int]] = {}
        self.cur = 0  # upper bound of the true running total until the next sweep
        self.peak = 0
        self.baseline = 0

    def _storage(self, t: torch.Tensor) -> torch.UntypedStorage | None:
        if t.device.type != self.device_type:
            return None
        try:
            return t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse, nested, ...: no plain storage
            return None

    def add_resident(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage as allocated before tracking started."""
        st = self._storage(t)
        if st is not None:
            key = st._cdata
            if key not in self.pre and key not in self.new:
                size = round_alloc(st.nbytes())
                self.pre[key] = (StorageWeakRef(st), size)
                self.baseline += size

    def sweep(self) -> None:
        """Drop freed storages from the running total."""
        for table in (self.new, self.pre):
            dead = [k for k, (ref, _) in table.items() if ref.expired()]
            for k in dead:
                self.cur -= table.pop(k)[1]

    def read_peak(self) -> int:
        """Peak since the last call (bytes), then restart the peak at the current total."""
        self.sweep()
        peak, self.peak = self.peak, self.cur
        return peak

    def current(self) -> int:
        self.sweep()
        return self.cur

    def _inputs(self, args: Any, kwargs: dict[str, Any]) -> None:
        for a in (*args, *kwargs.values()):
            if isinstance(a, torch.Tensor):
                self.add_resident(a)
            elif isinstance(a, (list, tuple)):
                for b in a:
                    if isinstance(b, torch.Tensor):
                        self.add_resident(b)

    def _outputs(self, out: Any) -> None:
        items = out if isinstance(out, (list, tuple)) else (out,)
        grew = False
        for t in items:
            if not isinstance(t, torch.Tensor):
                continue
            st = self._storage(t)
            if st is None:
                continue
            key = st._cdata
            size = round_alloc(st.nbytes())
            if key in self.pre:
                continue
            old = self.new.get(key)
            if old is None:
                if size:
                    self.new[key] = (StorageWeakRef(st), size)
                    self.cur += size
                    grew = True
            elif size > old[1]:  # resized in place (``out=`` variants)
                self.new[key] = (old[0], size)
                self.cur += size - old[1]
                grew = True
        if grew and self.cur > self.peak:
            self.sweep()
            self.peak = max(self.peak, self.cur)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        self._inputs(args, kwargs)
        out = func(*args, **kwargs)
        self._outputs(out)
        return out


class _Cuda:
    """Backend reading the CUDA caching allocator's statistics."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reserved = 0

    def begin(self, resident: Iterable[Any]) -> int:
        torch.cuda.synchronize(self.device)
        start = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.reserved = torch.cuda.memory_reserved(self.device)
        return start

    def read_peak(self) -> int:
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        self.reserved = max(self.reserved, torch.cuda.max_memory_reserved(self.device))
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def end(self) -> tuple[int | None, int | None]:
        """(baseline, reserved peak) in bytes; baseline is the ``begin`` value (None: use it)."""
        return None, self.reserved


class _Estimate:
    """Backend tracking storages with :class:`StorageTracker`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.tracker: StorageTracker | None = None

    def begin(self, resident: Iterable[Any]) -> int:
        self.tracker = StorageTracker(self.device.type)
        for t in _tensors(list(resident)):
            self.tracker.add_resident(t)
        self.tracker.__enter__()
        return 0

    def read_peak(self) -> int:
        assert self.tracker is not None
        return self.tracker.read_peak()

    def end(self) -> tuple[int | None, int | None]:
        assert self.tracker is not None
        self.tracker.__exit__(None, None, None)
        baseline = self.tracker.baseline
        self.tracker = None
        return baseline, None


class MemoryMeter:
    """Measures regions (``with meter.measure():``) and phases inside them (``meter.phase``).

    While a region is measured the meter is the active one of :mod:`memcomp.measure.phases`, so a
    learner's ``with phase("inner"):`` is measured without handing the learner the meter.

        ``resident``: objects (modules, optimisers, tensors, tasks) whose tensors count in the
        CPU estimate's baseline even if the region never touches them. The result keeps, over all
        regions, the largest peak increment, baseline, reserved peak and per-phase increment.
    """

    def __init__(
        self, device: torch.device | str, source: str = "auto", resident: Iterable[Any] = ()
    ) -> None:
        self.device = torch.device(device)
        self.source = resolve_source(self.device, source)
        self.resident = list(resident)
        self._backend: _Cuda | _Estimate | None = None
        if self.source == "cuda":
            self._backend = _Cuda(self.device)
        elif self.source == "cpu-estimate":
            self._backend = _Estimate(self.device)
        self._active = False
        self._start = 0
        self._region_peak = 0
        self._open: list[list[Any]] = []  # [name, running peak] of the phases entered
        self._peak: int | None = None
        self._baseline: int | None = None
        self._reserved: int | None = None
        self._phases: dict[str, int] = {}

    def _fold(self) -> None:
        """Fold the peak since the last boundary into the region and every open phase."""
        assert self._backend is not None
        peak = self._backend.read_peak()
        self._region_peak = max(self._region_peak, peak)
        for entry in self._open:
            entry[1] = max(entry[1], peak)

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        """One measured region (one meta-iteration)."""
        if self._backend is None:
            yield
            return
        if self._active:
            raise RuntimeError("MemoryMeter.measure() regions cannot be nested")
        self._start = self._region_peak = self._backend.begin(self.resident)
        self._active, self._open = True, []
        try:
            with active_meter(self.phase):  # learners' ``phase(name)`` reaches this meter
                yield
        finally:
            self._fold()
            baseline, reserved = self._backend.end()
            self._active = False
            baseline = self._start if baseline is None else baseline
            inc = self._region_peak - self._start
            self._peak = inc if self._peak is None else max(self._peak, inc)
            self._baseline = baseline if self._baseline is None else max(self._baseline, baseline)
            if reserved is not None:
                self._reserved = max(self._reserved or 0, reserved)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A named phase inside :meth:`measure` (a no-op outside one); phases may nest."""
        if not self._active:
            yield
            return
        self._fold()
        entry: list[Any] = [name, -(2**62)]
        self._open.append(entry)
        try:
            yield
        finally:
            self._fold()
            self._open.remove(entry)
            inc = entry[1] - self._start
            self._phases[name] = max(self._phases.get(name, inc), inc)

    def result(self) -> MemoryResult:
        def mb(x: int | None) -> float | None:
            return None if x is None else x / MB

        return MemoryResult(
            source=self.source,
            device=str(self.device),
            peak_mb=mb(self._peak),
            baseline_mb=mb(self._baseline),
            reserved_mb=mb(self._reserved),
            phases={k: v / MB for k, v in self._phases.items()},
        )
