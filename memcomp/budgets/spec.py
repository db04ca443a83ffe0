"""Budget files, parsed by the config layer: every problem names its file, line and field.

A budget file (or the ``budgets:`` section of a suite) lists cells and what their peak memory
(the increment above the baseline, :class:`~memcomp.measure.memory.MemoryResult.peak_mb`) may be::

    source: cpu-estimate          # what the numbers are: cuda | cpu-estimate
    defaults:                     # shared by every budget (each key may be overridden)
      dataset: {name: glyphs, image_size: 28}
      backbone: {name: conv4, hidden: 32}
      setting: {ways: 5, shots: 1, queries: 5}
      meta_batch: 1               # tasks per meta-iteration
      iterations: 2               # measured meta-iterations (after one warm-up)
      tolerance: "+5%"            # allowed growth over baseline_mb ("+N%" or "+N MB")
    budgets:
      - {learner: {name: mrml, inner_steps: 20}, limit_mb: 12}
      - {learner: {name: maml, inner_steps: 5}, baseline_mb: 30.1}

Memory has two sources (:mod:`memcomp.measure.memory`): ``cpu-estimate`` (the CPU estimate) and
``cuda`` (the CUDA caching allocator). They differ by a few percent, so a budget keeps a baseline
(and optionally a limit) per source; a plain number belongs to the stated ``source`` (the budget's
own, else the file's, else ``cpu-estimate``: old single-baseline files keep their meaning)::

      - {learner: {name: mrml}, limit_mb: 12, baseline_mb: {cpu-estimate: 11.41, cuda: 13.27}}

``memcomp check`` measures one source, the device's (``cuda`` on a GPU, else ``cpu-estimate``),
and judges each budget by that source's numbers only: it holds when the measurement is <= the
source's ``limit_mb`` and <= its ``baseline_mb`` plus the tolerance (whichever are given); a budget
with neither for that source is skipped ("no cuda baseline"), never judged by the other source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from memcomp.config import (
    Cell,
    Component,
    ConfigError,
    Loc,
    Setting,
    Source,
    TestConfig,
    TrainConfig,
    label,
    load_suite,
    params_of,
    read_yaml,
    spec_union,
    validate,
)
from memcomp.config.budgets import SOURCES as SOURCES  # re-exported (memcomp.budgets)
from memcomp.config.budgets import TOLERANCE, BudgetKeys, BudgetSource, source_key_problems
from memcomp.config.budgets import BudgetEntry as _BudgetEntry

BUILTIN_DEFAULTS: dict[str, Any] = {
    "dataset": {"name": "glyphs", "image_size": 28},
    "backbone": {"name": "conv4"},
    "setting": {},
    "meta_batch": 1,
    "iterations": 2,
    "dtype": "float32",
    "seed": 0,
}
COMPONENTS = ("dataset", "backbone", "learner")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _BudgetFile(_Strict):
    source: BudgetSource = "cpu-estimate"
    description: str = ""
    defaults: BudgetKeys = Field(default_factory=BudgetKeys)
    budgets: list[_BudgetEntry] = Field(min_length=1)


@dataclass
class Budget:
    """One resolved budget: the cell to measure and its bounds, per memory source."""

    index: int
    label: str
    cell: Cell
    iterations: int
    source: str  # the stated source: what a plain number in the file means
    limits: dict[str, float]  # source -> limit_mb
    baselines: dict[str, float]  # source -> baseline_mb
    tolerance: str | None

    def has_numbers(self, source: str) -> bool:
        """Whether ``source`` has a limit or a baseline to judge by."""
        return source in self.limits or source in self.baselines

    def allowed_mb(self, source: str) -> float | None:
        """The tightest bound for ``source`` (None: nothing to judge by, only to record)."""
        limit, baseline = self.limits.get(source), self.baselines.get(source)
        bounds = [limit] if limit is not None else []
        if self.tolerance is not None and baseline is not None:
            m = TOLERANCE.match(self.tolerance)
            assert m is not None
            x = float(m.group(1))
            grow = baseline * x / 100 if m.group(2) == "%" else x
            bounds.append(baseline + grow)
        return min(bounds) if bounds else None

    def bound_text(self, source: str) -> str:
        limit, baseline = self.limits.get(source), self.baselines.get(source)
        parts = [f"{source} limit {limit:g}"] if limit is not None else []
        if self.tolerance is not None and baseline is not None:
            parts.append(f"{source} baseline {baseline:g} {self.tolerance}")
        return ", ".join(parts)


@dataclass
class BudgetFile:
    """A parsed budget file: its budgets, where it came from and where the list sits in it."""

    path: Path | None
    source: str
    budgets: list[Budget]
    list_key: str = "budgets"


def _merge(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` wins key by key; a different ``name`` replaces the component entirely."""
    base, over = dict(base or {}), dict(over or {})
    if "name" in over and base.get("name") not in (None, over["name"]):
        return over
    return {**base, **over}


def _layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in layer.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) else value
    return out


def _label(spec: dict[str, Any], setting: Setting) -> str:
    """Short cell label: ``mrml K=20 | glyphs 28px 5w1s5q | conv4(hidden=32)``."""
    lrn, ds = spec["learner"], spec["dataset"]
    k = f" K={lrn['inner_steps']}" if "inner_steps" in lrn else ""
    size = f" {ds['image_size']}px" if "image_size" in ds else ""
    batch = f" B={spec['meta_batch']}" if spec["meta_batch"] != 1 else ""
    return (
        f"{label(lrn['name'], lrn, ('name', 'inner_steps'))}{k} | "
        f"{label(ds['name'], ds, ('name', 'image_size'))}{size} "
        f"{setting.ways}w{setting.shots}s{setting.queries}q{batch} | "
        f"{label(spec['backbone']['name'], spec['backbone'], ('name',))}"
    )


def _cell_model() -> type[BaseModel]:
    """A budget's cell, checked once merged: the config layer's component unions (built from
    the registries as they are now) and :class:`Setting`."""
    fields = {k: (spec_union(k, lists=False), ...) for k in COMPONENTS}
    return create_model("BudgetCell", __base__=_Strict, setting=(Setting, ...), **fields)


def parse_budgets(
    data: Any,
    source_path: Path | str | None = None,
    defaults: dict[str, Any] | None = None,
    require_baselines: bool = True,
    source: Source | None = None,
) -> BudgetFile:
    """Validate a budget file's content (or ``{"budgets": [...]}`` from a suite).

    ``defaults`` (e.g. derived from a suite) sit under the file's own ``defaults``. Raises
    :class:`~memcomp.config.ConfigError` listing every problem with its file, line (when
    ``source`` gives the line map) and field. With ``require_baselines`` a tolerance without
    ``baseline_mb`` is an error (record one with ``--update``).
    """
    file = str(source_path) if source_path is not None else "<budgets>"
    src = source or Source(file, "", data, {})
    if not isinstance(data, dict):
        raise ConfigError([src.problem((), "must be a mapping with a 'budgets' list")])
    out: list[tuple[Loc, str]] = []
    top: Any = validate(_BudgetFile, data, (), out)
    if top is None:
        raise ConfigError(src.problems(source_key_problems(out)))
    base = _layer(
        _layer(BUILTIN_DEFAULTS, defaults or {}), top.defaults.model_dump(exclude_none=True)
    )
    budgets, model = [], _cell_model()
    for i, entry in enumerate(top.budgets):
        b = _resolve(entry, model, base, top.source, ("budgets", i), out, require_baselines)
        if b is not None:
            budgets.append(b)
    if out:
        raise ConfigError(src.problems(out))
    path = Path(source_path) if source_path is not None else None
    return BudgetFile(path, top.source, budgets)


def _by_source(value: float | dict[str, float] | None, stated: str) -> dict[str, float]:
    """A plain number belongs to the stated source; a mapping says its sources itself."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else {stated: float(value)}


def _resolve(
    entry: _BudgetEntry,
    model: type[BaseModel],
    base: dict[str, Any],
    source: str,
    loc: Loc,
    out: list[tuple[Loc, str]],
    require_baselines: bool,
) -> Budget | None:
    spec = _layer(base, entry.model_dump(exclude_none=True))
    before = len(out)
    if "learner" not in spec:
        out.append(((*loc, "learner"), "required (a mapping with a 'name' key)"))
        return None
    parts = {k: spec[k] for k in (*COMPONENTS, "setting")}
    got: Any = validate(model, parts, loc, out)
    tol = spec.get("tolerance")
    stated = spec.get("source") or source
    limits, baselines = _by_source(entry.limit_mb, stated), _by_source(entry.baseline_mb, stated)
    if entry.limit_mb is None and tol is None:
        out.append((loc, "give limit_mb and/or tolerance (with baseline_mb)"))
    elif tol is not None and entry.baseline_mb is None and require_baselines:
        if entry.limit_mb is None:
            out.append(
                (
                    (*loc, "baseline_mb"),
                    f"required with tolerance {tol!r} "
                    "(record it with `memcomp check FILE --update`)",
                )
            )
    if len(out) > before or got is None:
        return None
    dataset, backbone, learner = (
        Component(str(getattr(got, k).name), params_of(getattr(got, k))) for k in COMPONENTS
    )
    train = TrainConfig(meta_batch=spec["meta_batch"], dtype=spec["dtype"], iterations=1)
    cell = Cell(
        "budgets", dataset, got.setting, backbone, learner, train, TestConfig(), spec["seed"]
    )
    return Budget(
        index=int(loc[-1]),
        label=entry.name or _label(spec, got.setting),
        cell=cell,
        iterations=spec["iterations"],
        source=stated,
        limits=limits,
        baselines=baselines,
        tolerance=tol,
    )


def _is_suite(data: Any) -> bool:
    return isinstance(data, dict) and "learners" in data and "datasets" in data


def _suite_defaults(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """Defaults (first dataset/backbone/setting, train options, seed) and raw budgets of a suite."""
    suite = load_suite(path)
    if not suite.budgets:
        raise ConfigError([Source(str(path), "", None, suite.lines).problem(
            ("budgets",), "the suite has no `budgets:` section")])  # fmt: skip
    d, b = suite.datasets[0], suite.backbones[0]
    return {
        "dataset": {"name": d.name, **d.params},
        "backbone": {"name": b.name, **b.params},
        "setting": suite.settings[0].model_dump(),
        "meta_batch": suite.train.meta_batch,
        "dtype": suite.train.dtype,
        "seed": suite.seeds[0],
    }, suite.budgets


def load_budgets(path: Path | str, require_baselines: bool = True) -> BudgetFile:
    """Read a budget YAML file, or a suite file's ``budgets:`` section."""
    path = Path(path)
    src = read_yaml(path, "budget")
    if _is_suite(src.data):
        defaults, raw = _suite_defaults(path)
        return parse_budgets({"budgets": raw}, path, defaults, require_baselines, src)
    return parse_budgets(src.data, path, None, require_baselines, src)
