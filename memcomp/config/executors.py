"""Where cells run: the executor registry and the ``executor:`` section of a suite (torch-free).

```yaml
executor:
  kind: local            # a registered executor: local | ray | slurm (or a plugin's)
  gpus: [0, 1]           # local: GPUs to use, one cell each at a time (default: all visible)
  cells_per_gpu: 1       # local: >1 shares a GPU (rows then say so)
  ray: {address: auto, max_retries: 2, cpus_per_cell: 1}
  slurm: {partition: gpu, time_min: 120, gpus_per_cell: 1, cpus_per_cell: 4, mem_gb: 32,
          array_parallelism: 8, learners: {imaml: {mem_gb: 64, time_min: 240}}}
```

Executors are registered like learners (:data:`EXECUTORS`: name, summary, options model,
``"module:attribute"`` of the implementation, an :class:`memcomp.exec.executor.Executor`
subclass or factory, imported on first use). An executor whose options model has fields gets a
section of the same name in ``executor:``; the section model is built from the registry, so a
plugin's executor is validated, in the JSON Schema and settable in a suite without other code.
The command line overrides the section key by key (:func:`resolve_executor`); the result is
recorded in the manifest so a cluster run is reproducible from its folder.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from memcomp.registry import Params, Registry, unknown_name_message

EXECUTORS: Registry[Any] = Registry("executor", "memcomp.executors")


class NoOptions(Params):
    """An executor without options of its own."""


class RayOptions(Params):
    """An existing Ray cluster: its address and how cells are retried there."""

    address: str = Field("auto", description="Ray cluster address (host:port) or auto")
    max_retries: int = Field(2, ge=0, le=20, description="re-runs of a cell whose node died")
    cpus_per_cell: float = Field(1.0, gt=0, description="CPUs a CPU cell asks Ray for")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Ray runtime_env, e.g. {py_modules: [path]}"
    )


class SlurmResources(Params):
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
        return {**base.model_dump(), **(over.model_dump(exclude_none=True) if over else {})}


for _name, _summary, _options, _target in [
    ("local", "this machine: each cell in its own process (--jobs at once, --gpus pinned), or "
     "inline in this one (--isolation inline)", NoOptions, "processes:local_executor"),
    ("ray", "an existing Ray cluster: one task per cell, results back to the driver", RayOptions,
     "ray_executor:RayExecutor"),
    ("slurm", "SLURM through submitit: job arrays writing into a shared results folder",
     SlurmOptions, "slurm_executor:SlurmExecutor"),
]:  # fmt: skip
    EXECUTORS.register_lazy(_name, _summary, _options, f"memcomp.exec.{_target}")


class ExecutorOptions(BaseModel):
    """The ``executor:`` section: the kind, the local GPU options and one section per registered
    executor with options (:func:`executor_model` adds those from the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: str = Field("local", description="a registered executor (memcomp list executors)")
    gpus: list[int] | Literal["all"] = Field(
        "all", description="local: GPUs to use, one cell each at a time (default: all visible)"
    )
    cells_per_gpu: int = Field(1, ge=1, le=64, description="local: >1 shares a GPU")

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in EXECUTORS:
            raise ValueError(unknown_name_message("executor", kind, EXECUTORS.names()))
        return kind

    def section(self, name: str) -> Any:
        """The options of executor ``name`` (its registered model's defaults when not given)."""
        if has_section(name):
            return getattr(self, field_name(name))
        return EXECUTORS.get(name).params()


def field_name(name: str) -> str:
    """The attribute holding executor ``name``'s section (``-`` is not allowed in names)."""
    return name.replace("-", "_")


def has_section(name: str) -> bool:
    return name in EXECUTORS and bool(EXECUTORS.get(name).params.model_fields)


_models: dict[tuple[Any, ...], type[ExecutorOptions]] = {}


def executor_model() -> type[ExecutorOptions]:
    """:class:`ExecutorOptions` with a section for every registered executor with options."""
    key = tuple((e.name, e.params) for e in EXECUTORS)
    if key not in _models:
        sections: dict[str, Any] = {
            field_name(e.name): (
                e.params,
                Field(default_factory=e.params, alias=e.name, description=e.summary),
            )
            for e in EXECUTORS
            if e.params.model_fields
        }
        model = create_model(
            "Executor", __base__=ExecutorOptions, __doc__=ExecutorOptions.__doc__, **sections
        )
        _models[key] = model
    return _models[key]


def resolve_executor(
    suite: Any, overrides: dict[str, Any], flags: dict[str, str] | None = None
) -> ExecutorOptions:
    """The suite's ``executor:`` section with the command line's ``overrides`` applied.

    ``overrides`` maps dotted keys (``kind``, ``ray.address``, ``slurm.partition``...) to values;
    None values are not given. The suite's own values were checked when it was loaded, so a
    problem here comes from the command line: a ``command line: FLAG: ...`` line when ``flags``
    (dotted key -> option) names the option, else at the suite's ``executor`` field.
    """
    given = getattr(suite, "executor", None)
    data: dict[str, Any] = (
        given.model_dump(exclude_unset=True, by_alias=True) if given is not None else {}
    )
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    try:
        return executor_model().model_validate(data)
    except ValidationError as e:
        from memcomp.config.problems import ConfigError, Problem, validation_problems

        flags = flags or {}
        out = []
        for loc, msg in validation_problems(e, ()):
            key = ".".join(str(p) for p in loc if not isinstance(p, int))
            if overrides.get(key) is not None and key in flags:
                out.append(Problem("command line", None, str(flags[key]), msg))
            else:  # a command-line value that makes a suite key wrong: say both
                out.append(suite.problem(("executor", *loc), f"{msg} (from the command line)"))
        raise ConfigError(out) from None
