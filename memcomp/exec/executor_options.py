"""Where cells run: the ``executor:`` section of a suite and the ``memcomp run`` options over it.

```yaml
executor:
  kind: local            # local | ray | slurm
  gpus: [0, 1]           # local: GPUs to use, one cell each at a time (default: all visible)
  cells_per_gpu: 1       # local: >1 shares a GPU (rows then say so)
  ray: {address: auto, max_retries: 2, cpus_per_cell: 1}
  slurm: {partition: gpu, time_min: 120, gpus_per_cell: 1, cpus_per_cell: 4, mem_gb: 32,
          array_parallelism: 8, learners: {imaml: {mem_gb: 64, time_min: 240}}}
```

Command-line options override the file key by key (see :func:`resolve_executor`); the result is
recorded in the manifest so a cluster run is reproducible from its folder.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

EXECUTORS = ("local", "ray", "slurm")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RayOptions(_Strict):
    """An existing Ray cluster: its address and how cells are retried there."""

    address: str = Field("auto", description="Ray cluster address (host:port) or auto")
    max_retries: int = Field(2, ge=0, le=20, description="re-runs of a cell whose node died")
    cpus_per_cell: float = Field(1.0, gt=0, description="CPUs a CPU cell asks Ray for")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Ray runtime_env, e.g. {py_modules: [path]}"
    )


class SlurmResources(_Strict):
    """What one cell's SLURM job asks for (every key may be overridden per learner)."""

    partition: str | None = None
    time_min: int | None = Field(None, ge=1, description="time limit per cell, minutes")
    gpus_per_cell: int | None = Field(None, ge=0)
    cpus_per_cell: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)


class SlurmOptions(SlurmResources):
    """A SLURM cluster reached through submitit: one job array per resource set."""

    array_parallelism: int = Field(16, ge=1, description="cells of one array running at once")
    max_requeues: int = Field(3, ge=0, description="requeues after preemption or timeout")
    wait: bool = Field(True, description="follow the jobs (False: return after submission)")
    learners: dict[str, SlurmResources] = Field(default_factory=dict)

    def resources_for(self, learner: str) -> dict[str, Any]:
        """This learner's resources: its override, else the suite's."""
        base = SlurmResources(**self.model_dump(include=set(SlurmResources.model_fields)))
        over = self.learners.get(learner)
        merged = {**base.model_dump(), **(over.model_dump(exclude_none=True) if over else {})}
        return merged


class ExecutorOptions(_Strict):
    kind: Literal["local", "ray", "slurm"] = "local"
    gpus: list[int] | Literal["all"] = "all"
    cells_per_gpu: int = Field(1, ge=1, le=64)
    ray: RayOptions = Field(default_factory=RayOptions)
    slurm: SlurmOptions = Field(default_factory=SlurmOptions)


def parse_gpus(text: str) -> list[int] | Literal["all"]:
    """``--gpus 0,1,3`` (or ``all``) as a list of GPU indices; ValueError names the bad part."""
    if text.strip() == "all":
        return "all"
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"--gpus: {part!r} is not a GPU index (expected e.g. 0,1,2 or all)")
        out.append(int(part))
    if len(set(out)) != len(out):
        raise ValueError(f"--gpus: {text!r} names a GPU twice")
    return out


def resolve_executor(suite: Any, overrides: dict[str, Any]) -> ExecutorOptions:
    """The suite's ``executor:`` section with the command line's ``overrides`` applied.

    ``overrides`` maps dotted keys (``kind``, ``ray.address``, ``slurm.partition``...) to values;
    None values are not given. Problems raise the suite's error, one line per problem with its
    file:line.
    """
    data: dict[str, Any] = _deep_copy(getattr(suite, "executor", None) or {})
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    try:
        return ExecutorOptions(**data)
    except ValidationError as e:
        from memcomp.config import SuiteError

        problems = []
        for err in e.errors():
            loc = ("executor", *err["loc"])
            given = "command line" if _from_overrides(err["loc"], overrides) else None
            msg = err["msg"] + (f" (from the {given})" if given else "")
            problems.append(suite.problem(loc, msg))
        raise SuiteError(problems) from None


def _from_overrides(loc: tuple[Any, ...], overrides: dict[str, Any]) -> bool:
    key = ".".join(str(p) for p in loc if not isinstance(p, int))
    return any(overrides.get(k) is not None for k in (key, key.split(".")[0]))


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def cluster_device(kind: str, device: str) -> Any:
    """The device cells get on a cluster (None for the local executor, which resolves its own).

    The driver cannot see the nodes' GPUs, so ``auto`` is refused for ray and slurm.
    """
    if kind == "local":
        return None
    import torch

    from memcomp.errors import InputError

    if device not in ("cpu", "cuda"):
        raise InputError(
            f"--device: say cpu or cuda with --executor {kind} (got {device!r}): the driver "
            "cannot see which devices the cluster's nodes have"
        )
    return torch.device(device)


def plan_executor(suite: Any, overrides: dict[str, Any], device: str | None) -> tuple[Any, Any]:
    """The run's :class:`ExecutorOptions` and, for ray/slurm, the cells' device (None: local,
    resolved by preflight). ``--gpus`` text is parsed here; the cluster packages must import."""
    from memcomp.errors import InputError

    overrides = dict(overrides)
    if isinstance(overrides.get("gpus"), str):
        try:
            overrides["gpus"] = parse_gpus(overrides["gpus"])
        except ValueError as e:
            raise InputError(str(e)) from None
    executor = resolve_executor(suite, overrides)
    if executor.kind in ("ray", "slurm"):
        from memcomp.exec.ray_executor import ray_missing
        from memcomp.exec.slurm_executor import slurm_missing

        why = ray_missing() if executor.kind == "ray" else slurm_missing()
        if why:
            raise InputError(why)
    return executor, cluster_device(executor.kind, device or suite.device)
