"""``train.compile``: CUDA-graph capture (``graphs``) or ``torch.compile`` (``inductor``) of the
launch-bound parts a learner hands over (``mrml``: its head steps and linear solve).

A learner supports a mode by declaring it on its parameter model (``compile_modes``, checked at
expansion: :mod:`memcomp.config.compiling`) and by having ``compile_with(wrap)``, which replaces
its tensor functions by ``wrap(fn)``. The backward pass stays eager: the wrapped functions need no
derivative. Nothing falls back silently: an unsupported learner is an :class:`InputError`, and
``graphs`` off CUDA is a skipped cell with its reason (as ``precision: tf32`` on a CPU). The
CPU memory estimate is a dispatch mode, which torch.compile refuses: under it the functions run
eagerly (:func:`traced_eagerly`), so a compiled cell's CPU estimate is its eager one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode
from torch.utils._pytree import tree_map

from memcomp.config.compiling import compile_problem
from memcomp.errors import InputError

Fn = Callable[..., Any]


def compile_skip_reason(mode: str, device: torch.device) -> str | None:
    """Why a cell with ``compile: mode`` cannot run on ``device`` (None: it can)."""
    if mode == "graphs" and device.type != "cuda":
        return f"compile: graphs captures CUDA graphs and needs a CUDA device (this cell: {device})"
    return None


def _key(args: tuple[Any, ...]) -> Hashable:
    return tuple((tuple(a.shape), a.dtype, a.device) if isinstance(a, Tensor) else a for a in args)


class CudaGraphed:
    """``fn`` captured once per input signature (shapes, dtypes, devices and the non-tensor
    arguments) into a CUDA graph with static input and output buffers; each call copies its
    inputs in, replays, and returns copies of the outputs (a later replay overwrites them).

    ``fn`` must not read values back to the host, change its inputs or depend on anything but its
    arguments (``mrml``'s head steps and fixed-iteration solve do neither)."""

    def __init__(self, fn: Fn, warmup: int = 2) -> None:
        self.fn, self.warmup = fn, warmup
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, list[Any], Any]] = {}

    def __call__(self, *args: Any) -> Any:
        key = _key(args)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
        graph, static_in, static_out = self.graphs[key]
        for dst, src in zip(static_in, args, strict=True):
            if isinstance(dst, Tensor):
                dst.copy_(src)
        graph.replay()
        return tree_map(lambda t: t.clone() if isinstance(t, Tensor) else t, static_out)

    def _capture(self, args: tuple[Any, ...]) -> tuple[torch.cuda.CUDAGraph, list[Any], Any]:
        static_in = [a.detach().clone() if isinstance(a, Tensor) else a for a in args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():  # warm-up: lazy init off the graph
            for _ in range(self.warmup):
                self.fn(*static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = self.fn(*static_in)
        return graph, static_in, static_out


def traced_eagerly(fn: Fn, wrapped: Fn) -> Fn:
    """``wrapped``, except under a Python dispatch mode (the CPU memory estimate, the host-read
    and op counters), which must see every op: ``fn`` itself then runs, the same computation
    (torch.compile refuses such modes; a graph replay would hide its ops from them)."""

    def run(*args: Any) -> Any:
        return fn(*args) if _get_current_dispatch_mode() is not None else wrapped(*args)

    run.wrapped = wrapped  # type: ignore[attr-defined]
    return run


def wrapper(mode: str, backend: str = "inductor") -> Callable[[Fn], Fn]:
    """The function wrapper of ``mode``: :class:`CudaGraphed`, or ``torch.compile`` with
    ``backend`` (``inductor``; tests may pass ``aot_eager``), whole graph, static shapes."""
    if mode == "graphs":
        return lambda fn: traced_eagerly(fn, CudaGraphed(fn))
    if mode == "inductor":
        return lambda fn: traced_eagerly(
            fn, torch.compile(fn, backend=backend, fullgraph=True, dynamic=False)
        )
    raise ValueError(f"unknown compile mode {mode!r}")


def apply_compile(learner: Any, name: str, mode: str, backend: str = "inductor") -> None:
    """Hand ``learner`` (registered as ``name``) the wrapper of ``mode`` (``none``: nothing)."""
    if mode == "none":
        return
    problem = compile_problem(name, learner.params, mode)
    hook = getattr(learner, "compile_with", None)
    if problem or not callable(hook):
        raise InputError(problem or f"learner {name} has no compile_with: compile: {mode} refused")
    hook(wrapper(mode, backend))
