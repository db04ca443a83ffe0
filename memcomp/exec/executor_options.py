"""Which executor runs a run, and on which device: the suite's ``executor:`` section with the
command line over it (:func:`memcomp.config.executors.resolve_executor`), the executor made
from the registry, refused at once when it cannot be used here (its package missing; a remote
executor without an explicit ``--device``)."""

from __future__ import annotations

from typing import Any

from memcomp.config.executors import ExecutorOptions, resolve_executor
from memcomp.config.run_options import RunOptions, parse_gpus
from memcomp.errors import InputError
from memcomp.exec.executor import Executor, executor_name, make_executor

__all__ = ["ExecutorOptions", "cluster_device", "parse_gpus", "plan_executor", "resolve_executor"]


def cluster_device(executor: Executor, device: str) -> Any:
    """The device cells get on a remote executor (None for a local one, which preflight
    resolves). The driver cannot see the nodes' GPUs, so ``auto`` is refused there."""
    if not executor.remote:
        return None
    import torch

    if device not in ("cpu", "cuda"):
        raise InputError(
            f"--device: say cpu or cuda with --executor {executor_name(executor.options)} (got "
            f"{device!r}): the driver cannot see which devices the cluster's nodes have"
        )
    return torch.device(device)


def plan_executor(suite: Any, options: RunOptions) -> tuple[Executor, Any]:
    """The run's executor (its options resolved) and, for a remote one, the cells' device."""
    where = resolve_executor(suite, options.executor_overrides(), options.executor_flags())
    executor = make_executor(options.model_copy(update={"executor_options": where}))
    why = executor.missing()
    if why:
        raise InputError(why)
    return executor, cluster_device(executor, options.device or suite.device)
