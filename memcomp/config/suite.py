"""Suites: YAML files describing a cross product of runs (cells).

``load_suite`` reads and validates a suite against one pydantic model built from the registries
(:mod:`memcomp.config.spec`), reporting every problem at once with its file, line and field path,
and expands it into :class:`~memcomp.config.cells.Cell` objects, each knowing where its dataset,
setting, backbone, learner and seed are written. Learner parameters given as lists expand into
one cell per value; a learner entry may override ``train``/``test`` keys. Top-level keys starting
with ``x-`` are ignored (a place for YAML anchors to reuse with ``<<:``).

An optional ``parts:`` list splits a suite into blocks: each part may give ``datasets``,
``settings``, ``backbones``, ``learners`` and ``seeds`` (replacing the top-level ones for that part)
and ``train``/``test`` (merged key by key over the top-level ones), plus a ``name`` and
``description`` for documentation. The cells are the concatenation over parts of each part's cross
product, e.g. to pair each dataset with its own backbone and hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memcomp.config.budgets import source_key_problems
from memcomp.config.cells import Cell, Component
from memcomp.config.components import LearnerEntry, component_of, learner_entry
from memcomp.config.executors import ExecutorOptions
from memcomp.config.expand import suite_cells
from memcomp.config.problems import ConfigError, Loc, Problem, short, validate
from memcomp.config.settings import Setting, TestConfig, TrainConfig, merged
from memcomp.config.source import LineMap, Source, line_of, read_yaml
from memcomp.config.spec import AXES, suite_models
from memcomp.errors import InputError


@dataclass(frozen=True)
class SuitePart:
    """One block of cells: its axes, resolved from the part's own keys and the top level.

    ``index`` is the position in ``parts`` (None: a suite without parts, i.e. the top level);
    ``own`` names the keys given in the part itself (which decides where problems point).
    ``learners`` holds the validated learner entries (lists and overrides unexpanded).
    """

    name: str
    index: int | None
    seeds: list[int]
    datasets: list[Component]
    settings: list[Setting]
    backbones: list[Component]
    train: TrainConfig
    test: TestConfig
    learners: list[LearnerEntry]
    own: frozenset[str] = frozenset()
    description: str = ""

    def loc(self, key: str) -> Loc:
        """Where ``key`` of this part is written: in the part, or at the top level."""
        if self.index is not None and key in self.own:
            return ("parts", self.index, key)
        return (key,)


@dataclass(frozen=True)
class Suite:
    """A validated suite and its cells. ``learners`` holds the entries as written (lists and
    overrides unexpanded). With ``parts``, ``datasets``/``settings``/``backbones``/``learners``/
    ``seeds`` list every distinct value used by any part (first appearance first) and ``parts``
    holds each part resolved; without, ``parts`` is empty and the top-level keys are the only block.
    """

    name: str
    description: str
    seeds: list[int]
    device: str
    datasets: list[Component]
    settings: list[Setting]
    backbones: list[Component]
    train: TrainConfig
    test: TestConfig
    learners: list[dict[str, Any]]
    budgets: list[dict[str, Any]] | None = None  # as written (each checked as a BudgetEntry)
    plugins: tuple[str, ...] = ()
    executor: ExecutorOptions | None = None  # the ``executor:`` section (command line over it:
    # memcomp.config.executors.resolve_executor)
    source_path: Path | None = None
    source_text: str = ""
    lines: LineMap = field(default_factory=dict, repr=False, compare=False)
    parts: tuple[SuitePart, ...] = ()
    cells: tuple[Cell, ...] = field(default=(), repr=False, compare=False)
    top_block: SuitePart | None = field(default=None, repr=False, compare=False)

    def problem(self, loc: Loc, message: str) -> Problem:
        """A :class:`Problem` located at field ``loc`` of this suite's file (for later checks),
        e.g. ``suite.problem(cell.where("datasets"), "cannot be loaded")``."""
        file = str(self.source_path) if self.source_path is not None else f"<suite {self.name}>"
        return Source(file, self.source_text, None, self.lines).problem(loc, message)

    def blocks(self) -> list[SuitePart]:
        """The parts, or the one block made of the top-level keys for a suite without parts."""
        if self.parts:
            return list(self.parts)
        return [self.top_block] if self.top_block is not None else []


def _distinct(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _components(kind: str, specs: list[BaseModel] | None) -> list[Component]:
    return [component_of(kind, s) for s in specs or []]


def _required(data: dict[Any, Any]) -> list[tuple[Loc, str]]:
    """The four axes must be given at the top level or in every part."""
    parts = data.get("parts")
    if parts is None:
        return [((key,), "required") for key in AXES if data.get(key) is None]
    return [
        (("parts", i, key), "required (in this part or at the top level)")
        for i, raw in enumerate(parts if isinstance(parts, list) else [])
        if isinstance(raw, dict)
        for key in AXES
        if raw.get(key) is None and data.get(key) is None
    ]


def _part(top: Any, p: Any, index: int | None, raw: dict[Any, Any]) -> SuitePart:
    """One block: the part's own keys over the top-level ones (train/test key by key)."""

    def pick(key: str) -> Any:
        own = getattr(p, key) if p is not None else None
        return own if own is not None else getattr(top, key)

    return SuitePart(
        name=p.name if p is not None else "",
        description=p.description if p is not None else "",
        index=index,
        seeds=list(pick("seeds") or [0]),
        datasets=_components("dataset", pick("datasets")),
        settings=list(pick("settings") or []),
        backbones=_components("backbone", pick("backbones")),
        train=merged(top.train, p.train if p is not None else None),
        test=merged(top.test, p.test if p is not None else None),
        learners=[learner_entry(s) for s in pick("learners") or []],
        own=frozenset(k for k in raw if raw[k] is not None),
    )


def _build(src: Source) -> Suite:
    """Validate a parsed suite and expand its cells; raise ConfigError listing every problem."""
    data = src.data
    if not isinstance(data, dict):
        msg = f"suite must be a YAML mapping (got {short(data)})"
        raise ConfigError([Problem(src.file, line_of(src.lines, ()), "", msg)])
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    out: list[tuple[Loc, str]] = []
    _load_plugins(data.get("plugins"), out)
    if out:
        raise ConfigError(src.problems(out))
    top: Any = validate(suite_models()[0], data, (), out)
    out.extend(_required(data))
    if out or top is None:
        raise ConfigError(src.problems(source_key_problems(out)))
    raw_parts = data.get("parts") or []
    if top.parts:
        parts = [_part(top, p, i, raw_parts[i]) for i, p in enumerate(top.parts)]
    else:
        parts = [_part(top, None, None, {})]
    cells = suite_cells(top.name, parts, bool(top.parts), out)
    if out:
        raise ConfigError(src.problems(out))
    return _suite(top, parts, src, cells)


def _load_plugins(modules: Any, out: list[tuple[Loc, str]]) -> None:
    """Import the suite's ``plugins:`` modules before validating (they register components)."""
    from memcomp.plugins import load

    if not isinstance(modules, list):
        return  # absent, or a wrong type the model reports
    for i, module in enumerate(modules):
        if isinstance(module, str) and module:
            try:
                load([module], "plugins")
            except InputError as e:
                out.append((("plugins", i), str(e).removeprefix("plugins: ")))


def _suite(top: Any, parts: list[SuitePart], src: Source, cells: list[Cell]) -> Suite:
    keys = ("datasets", "settings", "backbones", "seeds")
    used = {k: _distinct(x for p in parts for x in getattr(p, k)) for k in keys}
    raw_learners = [e.written for p in parts for e in p.learners]
    return Suite(
        name=top.name,
        description=top.description,
        seeds=used["seeds"],
        device=top.device,
        datasets=used["datasets"],
        settings=used["settings"],
        backbones=used["backbones"],
        train=top.train,
        test=top.test,
        learners=_distinct(raw_learners) if top.parts else raw_learners,
        budgets=[b.model_dump(exclude_unset=True) for b in top.budgets] if top.budgets else None,
        plugins=tuple(top.plugins or ()),
        executor=top.executor,
        source_path=src.path,
        source_text=src.text,
        lines=src.lines,
        parts=tuple(parts) if top.parts else (),
        cells=tuple(cells),
        top_block=parts[0],
    )


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; raise :class:`ConfigError` listing every problem."""
    return _build(read_yaml(path, "suite"))


def suite_from_dict(data: Any, file: str = "<suite>") -> Suite:
    """Validate an in-memory suite (no line numbers); raise :class:`ConfigError` on problems."""
    return _build(Source(file, "", data, {}))


def expand(suite: Suite) -> list[Cell]:
    """All cells of ``suite`` in a deterministic order (see :func:`memcomp.config.expand.product`);
    built (and checked) once when the suite was loaded."""
    return list(suite.cells)
