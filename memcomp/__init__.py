"""memcomp: memory, time and accuracy benchmarks for optimization-based meta-learning.

The public Python API (imported lazily: ``import memcomp`` does not import torch)::

    import memcomp
    suite = memcomp.load_suite("suites/quickstart.yaml")
    cells = memcomp.expand(suite)
    folder, outcomes = memcomp.run_suite("suites/quickstart.yaml", "results", isolation="inline")
    runs = memcomp.read_results(folder)          # runs.csv in results schema 2

    try:                                         # Ctrl-C / a full disk keep every finished row
        memcomp.run_suite("suites/quickstart.yaml", options=memcomp.RunOptions(jobs=2))
    except (memcomp.Interrupted, memcomp.DiskFull) as stop:
        print(stop)                              # cells saved, and the command that resumes

    @memcomp.register_learner("my-learner", "one line on it", MyParams)
    class MyLearner(memcomp.Learner): ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute", imported on first use
_LAZY = {
    "load_suite": "memcomp.config:load_suite",
    "expand": "memcomp.config:expand",
    "filter_cells": "memcomp.config:filter_cells",
    "run_suite": "memcomp.exec.api:run_suite",
    "RunOptions": "memcomp.config.run_options:RunOptions",
    "Interrupted": "memcomp.exec.schedule:Interrupted",
    "DiskFull": "memcomp.exec.schedule:DiskFull",
    "ProgressEvent": "memcomp.exec.progress:ProgressEvent",
    "RunProgress": "memcomp.exec.progress:RunProgress",
    "Executor": "memcomp.exec.executor:Executor",
    "EXECUTORS": "memcomp.config.executors:EXECUTORS",
    "run_cell": "memcomp.engine:run_cell",
    "read_results": "memcomp.results:read_results",
    "ResultsDir": "memcomp.results:ResultsDir",
    "build_report": "memcomp.report:build_report",
    "Cell": "memcomp.config.cells:Cell",
    "Component": "memcomp.config.cells:Component",
    "Learner": "memcomp.learners.base:Learner",
    "LearnerParams": "memcomp.learners.base:LearnerParams",
    "LEARNERS": "memcomp.learners:LEARNERS",
    "DATASETS": "memcomp.data:DATASETS",
    "BACKBONES": "memcomp.backbones:BACKBONES",
    "InputError": "memcomp.errors:InputError",
    "MemcompError": "memcomp.errors:MemcompError",
}
_REGISTER = {"register_learner": "LEARNERS", "register_dataset": "DATASETS"}
_REGISTER["register_backbone"] = "BACKBONES"

__all__ = ["__version__", *_LAZY, *_REGISTER]


def _register(registry: str) -> Any:
    def register(name: str, summary: str, params: Any) -> Any:
        """Decorator registering a component (``LEARNERS.register`` etc.)."""
        return __getattr__(registry).register(name, summary, params)

    register.__name__ = f"register_{registry.lower()[:-1]}"
    return register


def __getattr__(name: str) -> Any:
    if name in _REGISTER:
        return _register(_REGISTER[name])
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'memcomp' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
