"""``memcomp check``: fail CI when a learner's peak memory grows past its budget.

A budget file (or the ``budgets:`` section of a suite) lists cells and what their peak memory
(the increment above the baseline, :class:`~memcomp.memory.MemoryResult.peak_mb`) may be::

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

A budget holds when the measurement is <= ``limit_mb`` and <= ``baseline_mb`` plus the
tolerance (whichever are given). ``cpu-estimate`` budgets are always measured on the CPU;
``cuda`` budgets are skipped where no GPU is available.
"""

from __future__ import annotations

import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from memcomp.backbones import BACKBONES
from memcomp.cells import Cell, Component
from memcomp.config import Setting, TestConfig, TrainConfig
from memcomp.data import DATASETS
from memcomp.errors import InputError
from memcomp.fsutil import atomic_write_text as _atomic_write
from memcomp.learners import LEARNERS
from memcomp.memory import MemoryResult
from memcomp.registry import Registry, unknown_name_message

Source = Literal["cuda", "cpu-estimate"]
TOLERANCE = re.compile(r"^\+?\s*(\d+(?:\.\d*)?)\s*(%|MB)$", re.IGNORECASE)
BUILTIN_DEFAULTS: dict[str, Any] = {
    "dataset": {"name": "glyphs", "image_size": 28},
    "backbone": {"name": "conv4"},
    "setting": {},
    "meta_batch": 1,
    "iterations": 2,
    "dtype": "float32",
    "seed": 0,
}
Measure = Callable[..., MemoryResult]
VERDICTS = ("ok", "exceeded", "error", "skipped", "recorded")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Common(_Strict):
    """Keys a budget and the ``defaults`` block share."""

    dataset: dict[str, Any] | None = None
    backbone: dict[str, Any] | None = None
    setting: dict[str, Any] | None = None
    learner: dict[str, Any] | None = None
    meta_batch: int | None = Field(None, ge=1)
    iterations: int | None = Field(None, ge=1, le=100)
    dtype: Literal["float32", "float64"] | None = None
    seed: int | None = Field(None, ge=0)
    tolerance: str | None = Field(None, pattern=TOLERANCE.pattern)
    source: Source | None = None


class _BudgetEntry(_Common):
    name: str | None = None
    limit_mb: float | None = Field(None, gt=0, allow_inf_nan=False)
    baseline_mb: float | None = Field(None, ge=0, allow_inf_nan=False)


class _BudgetTop(_Strict):
    source: Source = "cpu-estimate"
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    budgets: list[Any] = Field(min_length=1)


@dataclass
class Budget:
    """One resolved budget: the cell to measure and its bounds."""

    index: int
    label: str
    cell: Cell
    iterations: int
    source: str
    limit_mb: float | None
    baseline_mb: float | None
    tolerance: str | None

    def allowed_mb(self) -> float | None:
        """The tightest bound that applies (None: only a baseline to record)."""
        bounds = [self.limit_mb] if self.limit_mb is not None else []
        if self.tolerance is not None and self.baseline_mb is not None:
            m = TOLERANCE.match(self.tolerance)
            assert m is not None
            x = float(m.group(1))
            grow = self.baseline_mb * x / 100 if m.group(2) == "%" else x
            bounds.append(self.baseline_mb + grow)
        return min(bounds) if bounds else None

    def bound_text(self) -> str:
        parts = [f"limit {self.limit_mb:g}"] if self.limit_mb is not None else []
        if self.tolerance is not None and self.baseline_mb is not None:
            parts.append(f"baseline {self.baseline_mb:g} {self.tolerance}")
        return ", ".join(parts)


@dataclass
class BudgetFile:
    """A parsed budget file: its budgets, where it came from and where the list sits in it."""

    path: Path | None
    source: str
    budgets: list[Budget]
    list_key: str = "budgets"


@dataclass
class Outcome:
    budget: Budget
    verdict: str  # ok | exceeded | skipped | error | recorded
    measured_mb: float | None = None
    allowed_mb: float | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.verdict in ("exceeded", "error")


# ----------------------------------------------------------------------------- parsing


def _where(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _errors(e: ValidationError, loc: Sequence[str | int], valid: Sequence[str]) -> list[str]:
    out = []
    for err in e.errors():
        where = _where([*loc, *err["loc"]])
        if err["type"] == "extra_forbidden":
            msg = unknown_name_message("key", str(err["loc"][-1]), sorted(valid))
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})"
        out.append(f"{where}: {msg}")
    return out


def _merge(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` wins key by key; a different ``name`` replaces the component entirely."""
    base, over = dict(base or {}), dict(over or {})
    if "name" in over and base.get("name") not in (None, over["name"]):
        return over
    return {**base, **over}


def _component(
    registry: Registry[Any], raw: dict[str, Any], loc: list[str | int], problems: list[str]
) -> Component | None:
    name = raw.get("name")
    if not isinstance(name, str):
        problems.append(f"{_where([*loc, 'name'])}: required (one of {registry.names()})")
        return None
    if name not in registry:
        msg = unknown_name_message(registry.kind, name, registry.names())
        problems.append(f"{_where([*loc, 'name'])}: {msg}")
        return None
    entry = registry.get(name)
    try:
        params = entry.params.model_validate({k: v for k, v in raw.items() if k != "name"})
    except ValidationError as e:
        problems += _errors(e, loc, ["name", *entry.params.model_fields])
        return None
    return Component(entry.name, params.model_dump())


def _label(spec: dict[str, Any], setting: Setting) -> str:
    """Short cell label: ``mrml K=20 | glyphs 28px 5w1s5q | conv4(hidden=32)``."""

    def short(raw: dict[str, Any], skip: Sequence[str] = ()) -> str:
        items = [(k, v) for k, v in raw.items() if k not in ("name", *skip)]
        inner = ",".join(f"{k}={v}" for k, v in items)
        return f"{raw['name']}({inner})" if inner else str(raw["name"])

    lrn = spec["learner"]
    k = f" K={lrn['inner_steps']}" if "inner_steps" in lrn else ""
    ds = spec["dataset"]
    size = f" {ds['image_size']}px" if "image_size" in ds else ""
    batch = f" B={spec['meta_batch']}" if spec["meta_batch"] != 1 else ""
    return (
        f"{short(lrn, ['inner_steps'])}{k} | {short(ds, ['image_size'])}{size} "
        f"{setting.ways}w{setting.shots}s{setting.queries}q{batch} | {short(spec['backbone'])}"
    )


def parse_budgets(
    data: dict[str, Any],
    source_path: Path | str | None = None,
    defaults: dict[str, Any] | None = None,
    require_baselines: bool = True,
) -> BudgetFile:
    """Validate a budget file's content (or ``{"budgets": [...]}`` from a suite).

    ``defaults`` (e.g. derived from a suite) sit under the file's own ``defaults``. Raises
    :class:`InputError` listing every problem with its field path. With ``require_baselines``
    a tolerance without ``baseline_mb`` is an error (record one with ``--update``).
    """
    file = str(source_path) if source_path is not None else "<budgets>"
    if not isinstance(data, dict):
        raise InputError(f"{file}: must be a mapping with a 'budgets' list")
    try:
        top = _BudgetTop.model_validate(data)
    except ValidationError as e:
        lines = _errors(e, [], list(_BudgetTop.model_fields))
        raise InputError("\n".join(f"{file}: {x}" for x in lines)) from None
    problems: list[str] = []
    try:
        top_defaults = _Common.model_validate(top.defaults).model_dump(exclude_none=True)
    except ValidationError as e:
        problems += _errors(e, ["defaults"], list(_Common.model_fields))
        top_defaults = {}
    base = dict(BUILTIN_DEFAULTS)
    for layer in (defaults or {}, top_defaults):
        for key, value in layer.items():
            base[key] = _merge(base.get(key), value) if isinstance(value, dict) else value
    budgets = []
    for i, raw in enumerate(top.budgets):
        loc: list[str | int] = ["budgets", i]
        try:
            entry = _BudgetEntry.model_validate(raw)
        except ValidationError as e:
            problems += _errors(e, loc, list(_BudgetEntry.model_fields))
            continue
        b = _resolve(entry, base, top.source, loc, problems, require_baselines)
        if b is not None:
            budgets.append(b)
    if problems:
        raise InputError("\n".join(f"{file}: {p}" for p in problems))
    path = Path(source_path) if source_path is not None else None
    return BudgetFile(path, top.source, budgets)


def _resolve(
    entry: _BudgetEntry,
    base: dict[str, Any],
    source: str,
    loc: list[str | int],
    problems: list[str],
    require_baselines: bool,
) -> Budget | None:
    spec = dict(base)
    for key, value in entry.model_dump(exclude_none=True).items():
        spec[key] = _merge(spec.get(key), value) if isinstance(value, dict) else value
    before = len(problems)
    if "learner" not in spec:
        problems.append(f"{_where([*loc, 'learner'])}: required (one of {LEARNERS.names()})")
        return None
    dataset = _component(DATASETS, spec["dataset"], [*loc, "dataset"], problems)
    backbone = _component(BACKBONES, spec["backbone"], [*loc, "backbone"], problems)
    learner = _component(LEARNERS, spec["learner"], [*loc, "learner"], problems)
    try:
        setting = Setting.model_validate(spec["setting"])
    except ValidationError as e:
        problems += _errors(e, [*loc, "setting"], list(Setting.model_fields))
        setting = None
    tol = spec.get("tolerance")
    if entry.limit_mb is None and tol is None:
        problems.append(f"{_where(loc)}: give limit_mb and/or tolerance (with baseline_mb)")
    elif tol is not None and entry.baseline_mb is None and require_baselines:
        if entry.limit_mb is None:
            problems.append(
                f"{_where([*loc, 'baseline_mb'])}: required with tolerance {tol!r} "
                "(record it with `memcomp check FILE --update`)"
            )
    if len(problems) > before or None in (dataset, backbone, learner, setting):
        return None
    assert dataset and backbone and learner and setting
    train = TrainConfig(meta_batch=spec["meta_batch"], dtype=spec["dtype"], iterations=1)
    cell = Cell("budgets", dataset, setting, backbone, learner, train, TestConfig(), spec["seed"])
    label = entry.name or _label(spec, setting)
    return Budget(
        index=int(loc[-1]),
        label=label,
        cell=cell,
        iterations=spec["iterations"],
        source=spec.get("source") or source,
        limit_mb=entry.limit_mb,
        baseline_mb=entry.baseline_mb,
        tolerance=tol,
    )


def _is_suite(data: Any) -> bool:
    return isinstance(data, dict) and "learners" in data and "datasets" in data


def _suite_defaults(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """Defaults (first dataset/backbone/setting, train options, seed) and raw budgets of a suite."""
    from memcomp.suite import load_suite

    suite = load_suite(path)
    if not suite.budgets:
        raise InputError(f"{path}: the suite has no `budgets:` section")
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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if _is_suite(data):
        defaults, raw = _suite_defaults(path)
        return parse_budgets({"budgets": raw}, path, defaults, require_baselines)
    return parse_budgets(data, path, None, require_baselines)


# ----------------------------------------------------------------------------- measuring


def _default_measure(cell: Cell, device: str, iterations: int, source: str) -> MemoryResult:
    from memcomp.engine import measure_cell_memory

    return measure_cell_memory(cell, device=device, iterations=iterations, source=source)


def _device_for(source: str, device: str) -> tuple[str | None, str]:
    """(device to measure on, or None when skipped, and why)."""
    if source == "cpu-estimate":
        return "cpu", ""
    if device == "cpu":
        return None, "cuda budget, --device cpu"
    if not torch.cuda.is_available():
        return None, "cuda budget, no CUDA GPU here"
    return "cuda", ""


def check_budgets(
    budgets: BudgetFile, device: str = "auto", measure: Measure | None = None
) -> list[Outcome]:
    """Measure every budget (same cell measured once) and judge it."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda (got {device!r})")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA GPU is available")
    measure = measure or _default_measure
    cache: dict[tuple[str, str, int, str], tuple[MemoryResult | Exception, float]] = {}
    outcomes = []
    for b in budgets.budgets:
        dev, why = _device_for(b.source, device)
        if dev is None:
            outcomes.append(Outcome(b, "skipped", message=why))
            continue
        key = (b.cell.id, dev, b.iterations, b.source)
        if key not in cache:
            t0 = time.perf_counter()
            try:
                got: MemoryResult | Exception = measure(b.cell, dev, b.iterations, b.source)
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - a crashing cell fails its budget
                got = e
            cache[key] = (got, time.perf_counter() - t0)
        got, secs = cache[key]
        outcomes.append(_judge(b, got, secs))
    return outcomes


def _judge(b: Budget, got: MemoryResult | Exception, secs: float) -> Outcome:
    if isinstance(got, Exception):
        msg = f"{type(got).__name__}: {' '.join(str(got).split())[:300]}"
        return Outcome(b, "error", message=msg, seconds=secs)
    if got.peak_mb is None:
        return Outcome(b, "error", message=f"source {got.source} measured nothing", seconds=secs)
    allowed = b.allowed_mb()
    out = Outcome(b, "ok", got.peak_mb, allowed, seconds=secs)
    if allowed is None:
        out.verdict, out.message = "recorded", "no bound yet"
    elif got.peak_mb > allowed:
        out.verdict = "exceeded"
        out.message = f"peak {got.peak_mb:.3f} MB > allowed {allowed:.3f} MB ({b.bound_text()})"
    return out


# ----------------------------------------------------------------------------- reporting


def _table(outcomes: Sequence[Outcome], title: str) -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("budget (cell)", overflow="fold")
    table.add_column("source")
    table.add_column("MB", justify="right")
    table.add_column("budget MB", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("verdict")
    style = {"ok": "green", "exceeded": "bold red", "error": "bold red", "skipped": "yellow"}
    for o in outcomes:
        b = o.budget
        margin = "-"
        if o.measured_mb is not None and o.allowed_mb:
            margin = f"{100 * (o.allowed_mb - o.measured_mb) / o.allowed_mb:+.1f}%"
        color = style.get(o.verdict, "")
        table.add_row(
            str(b.index),
            b.label,
            b.source,
            "-" if o.measured_mb is None else f"{o.measured_mb:.3f}",
            "-" if o.allowed_mb is None else f"{o.allowed_mb:.3f}",
            margin,
            f"[{color}]{o.verdict}[/]" if color else o.verdict,
        )
    return table


def write_junit(outcomes: Sequence[Outcome], path: Path | str, name: str = "budgets") -> None:
    """JUnit XML: one testcase per budget; failure when exceeded, error, or skipped."""
    suite = ET.Element(
        "testsuite",
        name=f"memcomp check {name}",
        tests=str(len(outcomes)),
        failures=str(sum(o.verdict == "exceeded" for o in outcomes)),
        errors=str(sum(o.verdict == "error" for o in outcomes)),
        skipped=str(sum(o.verdict == "skipped" for o in outcomes)),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"memcomp.budgets.{name}",
            name=f"[{o.budget.index}] {o.budget.label}",
            time=f"{o.seconds:.3f}",
        )
        if o.verdict == "exceeded":
            fail = ET.SubElement(case, "failure", message=o.message, type="MemoryBudgetExceeded")
            fail.text = f"{o.message}\nsource: {o.budget.source}\ncell: {o.budget.cell.label()}"
        elif o.verdict == "error":
            ET.SubElement(case, "error", message=o.message, type="MeasurementError")
        elif o.verdict == "skipped":
            ET.SubElement(case, "skipped", message=o.message)
        if o.measured_mb is not None:
            out = ET.SubElement(case, "system-out")
            out.text = (
                f"peak_mb={o.measured_mb:.4f} allowed_mb={o.allowed_mb} source={o.budget.source}"
            )
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    _atomic_write(Path(path), ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")


# ----------------------------------------------------------------------------- --update


def _content_end(node: yaml.Node) -> int:
    """Index just after the last character of ``node``'s own text (not trailing comments)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False) or not node.value:
        return node.end_mark.index
    last = node.value[-1]
    return _content_end(last[1] if isinstance(last, tuple) else last)


def rewrite_baselines(text: str, values: dict[int, float], list_key: str = "budgets") -> str:
    """Set ``baseline_mb`` of the budgets at ``values``' indices, keeping comments and layout.

    Existing values are replaced in place; missing keys are appended to the budget's mapping
    (inside ``{...}`` for flow mappings, as a new line for block mappings).
    """
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise InputError("budget file is not a mapping")
    seq = next((v for k, v in root.value if k.value == list_key), None)
    if not isinstance(seq, yaml.SequenceNode):
        raise InputError(f"budget file has no `{list_key}:` list")
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
    for i, value in values.items():
        node = seq.value[i]
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise InputError(f"{list_key}[{i}] is not a mapping")
        new = f"{value:.3f}"
        found = next((v for k, v in node.value if k.value == "baseline_mb"), None)
        if found is not None:
            edits.append((found.start_mark.index, found.end_mark.index, new))
        elif node.flow_style:
            close = text.rindex("}", 0, node.end_mark.index)
            at = len(text[:close].rstrip())
            edits.append((at, at, f", baseline_mb: {new}"))
        else:
            indent = " " * node.value[0][0].start_mark.column
            eol = text.find("\n", _content_end(node.value[-1][1]))
            eol = len(text) if eol < 0 else eol
            edits.append((eol, eol, f"\n{indent}baseline_mb: {new}"))
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text


def update_file(path: Path, budgets: BudgetFile, outcomes: Sequence[Outcome]) -> int:
    """Rewrite ``baseline_mb`` from this run's measurements; return how many were written."""
    values = {
        o.budget.index: o.measured_mb
        for o in outcomes
        if o.measured_mb is not None and not math.isnan(o.measured_mb)
    }
    if not values:
        return 0
    text = path.read_text(encoding="utf-8")
    new = rewrite_baselines(text, values, budgets.list_key)
    check = yaml.safe_load(new)[budgets.list_key]
    for i, v in values.items():
        if abs(float(check[i]["baseline_mb"]) - round(v, 3)) > 1e-9:
            raise RuntimeError(f"rewriting {path} went wrong at {budgets.list_key}[{i}]")
    _atomic_write(path, new)
    return len(values)


# ----------------------------------------------------------------------------- entry point


def run_check(
    path: Path | str,
    update: bool = False,
    junit: Path | str | None = None,
    device: str = "auto",
    console: Console | None = None,
    measure: Measure | None = None,
) -> int:
    """Measure every budget in ``path``; 1 if any is exceeded (or fails to run), else 0.

    Bad input raises :class:`InputError` (exit 2). ``--update`` rewrites the baselines from this
    run (and then passes); ``measure`` replaces the runner's measurement (tests).
    """
    console = console or Console()
    path = Path(path)
    budgets = load_budgets(path, require_baselines=not update)
    outcomes = check_budgets(budgets, device, measure)
    if update:
        for o in outcomes:
            if o.verdict in ("ok", "exceeded", "recorded"):
                o.verdict, o.message = "recorded", f"baseline_mb <- {o.measured_mb:.3f}"
    console.print(_table(outcomes, f"memory budgets: {path}"))
    for o in outcomes:
        if o.message and o.verdict in ("exceeded", "error", "skipped"):
            console.print(
                f"[{o.budget.index}] {o.budget.label}: {o.verdict}: {o.message}",
                markup=False,
                highlight=False,
            )
    if junit is not None:
        write_junit(outcomes, junit, path.stem)
    if update:
        n = update_file(path, budgets, outcomes)
        console.print(f"updated {n} baseline(s) in {path}")
    n = {v: sum(o.verdict == v for o in outcomes) for v in VERDICTS}
    console.print(
        f"{n['ok']} within budget, {n['exceeded']} exceeded, {n['error']} failed to run, "
        f"{n['skipped']} skipped" + (f", {n['recorded']} recorded" if n["recorded"] else "")
    )
    return 1 if any(o.failed for o in outcomes) else 0
