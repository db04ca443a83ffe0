"""How a suite is run: ONE object (:class:`RunOptions`) from the command line to the scheduler.

Every ``memcomp run`` option that changes how a run runs is a field here, with its command-line
flag in the field's metadata. ``memcomp run`` builds the object from its options, the plan fills
in what it resolves (the executor section, GPU slots, loaded datasets: fields without a flag,
never recorded), the executors read it. What the user asked is recorded in the manifest
(:meth:`RunOptions.recorded`), and the command that resumes a run is built from that record
(:func:`memcomp.results.resume.resume_command` through :meth:`RunOptions.argv`), so an option
added here is in every resume command without more code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memcomp.config.executors import ExecutorOptions
from memcomp.errors import InputError

Device = Literal["auto", "cpu", "cuda"]
Isolation = Literal["process", "inline"]
# the run command's arguments that are not options of how it runs
NOT_RUN_OPTIONS = ("suite", "out", "dry_run", "resume")


def _flag(flag: str, default: Any = None, executor: str | None = None, **kw: Any) -> Any:
    """A field given by ``flag`` on the command line (``executor``: the dotted key it sets in
    the ``executor:`` section)."""
    extra = {"flag": flag, **({"executor_key": executor} if executor else {})}
    return Field(default, json_schema_extra=extra, **kw)


def _resolved(description: str) -> Any:
    return Field(None, exclude=True, description=description)


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


class RunOptions(BaseModel):
    """The options of one run (``memcomp run``'s, one field per option; see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    device: Device | None = _flag("--device", description="where cells run (None: the suite's)")
    only: str | None = _flag("--only", description="glob on cell id, learner or label")
    jobs: int = _flag("--jobs", 1, ge=1, description="cells at once (process isolation)")
    memory_limit_mb: float | None = _flag("--memory-limit", description="CUDA MB per cell")
    isolation: Isolation = _flag("--isolation", "process", description="process or inline")
    threads: int | None = _flag("--threads", ge=1, description="torch CPU threads per cell")
    executor: str | None = _flag("--executor", executor="kind", description="executor name")
    gpus: list[int] | Literal["all"] | None = _flag("--gpus", executor="gpus")
    cells_per_gpu: int | None = _flag("--cells-per-gpu", executor="cells_per_gpu", ge=1)
    ray_address: str | None = _flag("--ray-address", executor="ray.address")
    ray_max_retries: int | None = _flag("--ray-max-retries", executor="ray.max_retries", ge=0)
    slurm_partition: str | None = _flag("--slurm-partition", executor="slurm.partition")
    slurm_time: int | None = _flag("--slurm-time", executor="slurm.time_min", ge=1)
    slurm_array_parallelism: int | None = _flag(
        "--slurm-array-parallelism", executor="slurm.array_parallelism", ge=1
    )
    wait: bool | None = _flag("--wait", executor="slurm.wait", description="--wait/--no-wait")
    size_check: bool = _flag("--no-size-check", True, description="False: --no-size-check")
    plugins: tuple[str, ...] = _flag("--plugin", (), description="--plugin modules (repeatable)")

    # resolved by the plan (memcomp.exec.api.plan_run), never recorded
    memory_source: str = Field("auto", exclude=True, description="how memory is measured")
    executor_options: ExecutorOptions | None = _resolved("the executor section, CLI applied")
    gpu_slots: Any = _resolved("memcomp.exec.gpus.GpuSlots: one GPU per cell child")
    datasets: Any = _resolved("memcomp.engine.DataCache: datasets preflight already loaded")

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus_text(cls, value: Any) -> Any:
        return parse_gpus(value) if isinstance(value, str) else value

    @classmethod
    def of(cls, **values: Any) -> RunOptions:
        """Options from keyword values (field names; ``memory_limit`` for ``memory_limit_mb``;
        ``executor`` may be a mapping of dotted ``executor:`` keys, as the Python API took).
        A bad value is an :class:`~memcomp.errors.InputError` naming the option's flag."""
        if "memory_limit" in values:
            values["memory_limit_mb"] = values.pop("memory_limit")
        where = values.get("executor")
        if isinstance(where, dict):
            by_key = {f.json_schema_extra["executor_key"]: name for name, f in _flagged()
                      if "executor_key" in f.json_schema_extra}  # fmt: skip
            unknown = sorted(set(where) - set(by_key))
            if unknown:
                raise InputError(f"executor: no run option sets {', '.join(unknown)}")
            values.pop("executor")
            values.update({by_key[k]: v for k, v in where.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as e:
            from memcomp.config.problems import message

            flags = run_option_flags()
            lines = []
            for err in e.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                flag = flags.get(name, name)
                lines.append(f"{flag}: {message(err).removeprefix(flag + ': ')}")
            raise InputError("\n".join(lines)) from None

    def slots(self) -> int:
        """Cells at once: one per GPU slot when pinning, else ``jobs``."""
        return int(self.gpu_slots.capacity) if self.gpu_slots is not None else max(1, self.jobs)

    def cell_threads(self) -> int | None:
        """Torch CPU threads per cell: ``threads``, else the cores shared among the cells run at
        once (None: torch's default), so that parallel cells do not oversubscribe the CPU."""
        import os

        if self.threads is not None:
            return self.threads
        if self.slots() > 1:
            return max(1, (os.cpu_count() or 1) // self.slots())
        return None

    def executor_overrides(self) -> dict[str, Any]:
        """The dotted ``executor:`` keys the command line sets (None: not given)."""
        return {
            f.json_schema_extra["executor_key"]: getattr(self, name)
            for name, f in _flagged()
            if "executor_key" in f.json_schema_extra
        }

    def executor_flags(self) -> dict[str, str]:
        """Dotted ``executor:`` key -> the command-line flag that sets it."""
        return {
            f.json_schema_extra["executor_key"]: f.json_schema_extra["flag"]
            for _, f in _flagged()
            if "executor_key" in f.json_schema_extra
        }

    def recorded(self) -> dict[str, Any]:
        """What the user asked, as JSON data (the manifest's ``options``)."""
        return self.model_dump(mode="json")

    def argv(self) -> list[str]:
        """The command-line options that give these options (those not at their defaults)."""
        out: list[str] = []
        for name, f in _flagged():
            value, flag = getattr(self, name), f.json_schema_extra["flag"]
            if value == f.default:
                continue
            if name == "size_check":
                out.append(flag)
            elif name == "wait":
                out.append("--wait" if value else "--no-wait")
            elif name == "plugins":
                out += [a for m in value for a in (flag, m)]
            elif name == "gpus" and isinstance(value, list):
                out.append(f"{flag}={','.join(map(str, value))}")
            else:
                text = repr(value) if isinstance(value, float) else str(value)
                out.append(f"{flag}={text.removesuffix('.0')}")
        return out


def _flagged() -> list[tuple[str, Any]]:
    """``(field name, field info)`` of every option with a command-line flag, in order."""
    return [
        (name, f)
        for name, f in RunOptions.model_fields.items()
        if isinstance(f.json_schema_extra, dict) and "flag" in f.json_schema_extra
    ]


def run_option_flags() -> dict[str, str]:
    """Field name -> command-line flag of every run option."""
    return {name: str(f.json_schema_extra["flag"]) for name, f in _flagged()}
