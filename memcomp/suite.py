"""Suites: YAML files describing a cross product of runs (cells).

``load_suite`` reads and validates a suite, reporting every problem at once with its file, line
and field path; ``expand`` turns it into :class:`~memcomp.cells.Cell` objects. Learner parameters
given as lists expand into one cell per value; a learner entry may override ``train``/``test`` keys.
Top-level keys starting with ``x-`` are ignored (a place for YAML anchors to reuse with ``<<:``).

An optional ``parts:`` list splits a suite into blocks: each part may give ``datasets``,
``settings``, ``backbones``, ``learners`` and ``seeds`` (replacing the top-level ones for that part)
and ``train``/``test`` (merged key by key over the top-level ones), plus a ``name`` and
``description`` for documentation. The cells are the concatenation over parts of each part's cross
product, e.g. to pair each dataset with its own backbone and hyper-parameters.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from memcomp.backbones import BACKBONES
from memcomp.cells import Cell, Component
from memcomp.config import Setting, Strict, TestConfig, TrainConfig
from memcomp.data import DATASETS
from memcomp.errors import InputError
from memcomp.learners import LEARNERS
from memcomp.registry import Registry, unknown_name_message

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_LEARNER_CELLS = 10_000
Loc = tuple[str | int, ...]
_SIMPLE_KEY = re.compile(NAME_PATTERN)

# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a suite: where (file, 1-based line, field path) and what."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return text.replace("\r", "\\r").replace("\n", "\\n")  # always one line


class SuiteError(InputError):
    """A suite could not be loaded; ``problems`` lists everything found, one per line in str()."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_loc(loc: Iterable[str | int]) -> str:
    """``('learners', 1, 'inner_lr')`` -> ``learners[1].inner_lr``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _SIMPLE_KEY.fullmatch(str(part)):
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# ----------------------------------------------------------------------------- YAML reading


class _Loader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-3`` as a float (YAML 1.2), not as a string."""


_Loader.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_keys(root: yaml.Node) -> list[tuple[Loc, int, str]]:
    """Mapping keys written twice (path, 1-based line, key); run before merge keys are applied,
    so that a key overriding one merged in with ``<<:`` is not a duplicate."""
    dups: list[tuple[Loc, int, str]] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: Loc) -> None:
        if id(node) in seen:  # aliases may share (or recursively contain) nodes
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                if k.tag == _MERGE_TAG:
                    continue
                key = str(k.value) if isinstance(k, yaml.ScalarNode) else f"<{k.tag}>"
                if key in keys:
                    dups.append(((*path, key), k.start_mark.line + 1, key))
                    continue
                keys.add(key)
                walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    walk(root, ())
    return dups


class _Lines:
    """1-based lines of field paths, found in the composed node tree (merge keys applied: a key
    merged in with ``<<:`` is at the line it was written, an overriding key wins)."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root

    def get(self, loc: Loc) -> int | None:
        node, line = self.root, self.root.start_mark.line + 1
        for part in loc:
            found = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:  # the last one wins, as when constructing
                    if isinstance(k, yaml.ScalarNode) and str(k.value) == part:
                        found = (k.start_mark.line + 1, v)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    item = node.value[part]
                    found = (item.start_mark.line + 1, item)
            if found is None:
                return None
            line, node = found
        return line


Lines = Mapping[Loc, int] | _Lines


def _line_for(lines: Lines, loc: Loc) -> int | None:
    """The line of ``loc`` or of its nearest enclosing node present in the file."""
    parts = tuple(p if isinstance(p, int) else str(p) for p in loc)
    for n in range(len(parts), -1, -1):
        line = lines.get(parts[:n])
        if line is not None:
            return line
    return None


def _compose(text: str) -> tuple[yaml.Node | None, Any, list[tuple[Loc, int, str]]]:
    """Parse one YAML document: its node tree (for lines), its Python data, duplicate keys."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None, []
        dups = _duplicate_keys(node)
        return node, loader.construct_document(node), dups
    finally:
        loader.dispose()


def _read(path: Path, file: str) -> tuple[str, Any, Lines]:
    """Read and parse; unreadable files and YAML errors raise SuiteError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SuiteError(
            [Problem(file, None, "", f"cannot read file: not UTF-8 text ({e})")]
        ) from None
    except OSError as e:
        reason = e.strerror or str(e)
        raise SuiteError([Problem(file, None, "", f"cannot read file: {reason}")]) from None
    try:
        node, data, dups = _compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        if isinstance(e, yaml.reader.ReaderError):
            line = text.count("\n", 0, max(e.position, 0)) + 1
        what = " ".join(
            str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x
        )
        msg = f"YAML syntax error: {what or e}"
        raise SuiteError([Problem(file, line, "", msg)]) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise SuiteError([Problem(file, None, "", f"YAML error: {e}")]) from None
    if node is None:
        raise SuiteError([Problem(file, 1, "", "suite file is empty")])
    if dups:
        problems = [
            Problem(file, ln, format_loc(loc), f"duplicate key {key!r}") for loc, ln, key in dups
        ]
        raise SuiteError(problems)
    return text, data, _Lines(node)


# ----------------------------------------------------------------------------- error messages


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN = {
    "missing": "required",
    "finite_number": "must be a finite number",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "invalid_key": "keys must be strings",
}
_COMPARE = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _message(err: dict[str, Any], valid_keys: Sequence[str]) -> str:
    """Turn one pydantic error into a short message, e.g. ``must be > 0 (got -0.1)``."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return unknown_name_message("key", str(err["loc"][-1]), sorted(valid_keys))
    if kind == "missing":
        return "required"
    if kind in _PLAIN:
        msg = _PLAIN[kind]
    elif kind in _COMPARE:
        key, op = _COMPARE[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer() and abs(bound) < 1e15:
            bound = int(bound)
        msg = f"must be {op} {bound}"
    elif kind == "too_short":
        n = ctx.get("min_length", 1)
        msg = "must not be empty" if n == 1 else f"must have at least {n} items"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')}"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        msg = "must contain only letters, digits, '-' and '_'"
    else:
        text = str(err.get("msg", kind))
        msg = text[:1].lower() + text[1:]
    return f"{msg} (got {_short(err.get('input'))})"


def _validate(
    model: type[BaseModel], data: Any, loc: Loc, out: list[tuple[Loc, str]], **kw: Any
) -> BaseModel | None:
    """Validate ``data`` strictly; append ``(loc, message)`` problems and return None on error.

    ``kw`` may hold ``extra_keys`` (also allowed at the top of ``data``), ``list_axes``
    (param -> index of the value used, for list-expanded params) and ``only`` (report only
    errors under these top-level keys).
    """
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as e:
        valid = [*model.model_fields, *kw.get("extra_keys", ())]
        axes: dict[str, int] = kw.get("list_axes", {})
        only = kw.get("only")
        for err in e.errors():
            eloc: Loc = tuple(err["loc"])
            if only is not None and (not eloc or eloc[0] not in only):
                continue
            if eloc and isinstance(eloc[0], str) and eloc[0] in axes:
                eloc = (eloc[0], axes[eloc[0]], *eloc[1:])
            out.append(((*loc, *eloc), _message(err, valid)))
        return None


# ----------------------------------------------------------------------------- models

Seed = Annotated[int, Field(ge=0, lt=2**32)]
AXES = ("datasets", "settings", "backbones", "learners")  # required at the top or in each part
NonEmpty = Annotated[list[Any], Field(min_length=1)]


class _SuiteTop(Strict):
    """Top-level keys; component entries and configs are validated separately."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    datasets: NonEmpty | None = None
    settings: NonEmpty | None = None
    backbones: NonEmpty | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    test: dict[str, Any] = Field(default_factory=dict)
    learners: NonEmpty | None = None
    parts: NonEmpty | None = None
    budgets: list[dict[str, Any]] | None = None
    executor: dict[str, Any] | None = None  # checked by memcomp.exec.executor_options


class _PartTop(Strict):
    """Keys of one ``parts`` entry; each replaces the top-level key (train/test: key by key)."""

    name: str = Field("", max_length=100)
    description: str = ""
    seeds: Annotated[list[Seed], Field(min_length=1)] | None = None
    datasets: NonEmpty | None = None
    settings: NonEmpty | None = None
    backbones: NonEmpty | None = None
    train: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    learners: NonEmpty | None = None


@dataclass(frozen=True)
class SuitePart:
    """One block of cells: its axes, resolved from the part's own keys and the top level.

    ``index`` is the position in ``parts`` (None: a suite without parts, i.e. the top level);
    ``own`` names the keys given in the part itself (which decides where problems point).
    """

    name: str
    index: int | None
    seeds: list[int]
    datasets: list[Component]
    settings: list[Setting]
    backbones: list[Component]
    train: TrainConfig
    test: TestConfig
    learners: list[dict[str, Any]]
    own: frozenset[str] = frozenset()
    description: str = ""

    def loc(self, key: str) -> Loc:
        """Where ``key`` of this part is written: in the part, or at the top level."""
        if self.index is not None and key in self.own:
            return ("parts", self.index, key)
        return (key,)


@dataclass(frozen=True)
class Suite:
    """A validated suite. ``learners`` holds the raw entries (lists and overrides unexpanded).

    With ``parts``, ``datasets``/``settings``/``backbones``/``learners``/``seeds`` list every
    distinct value used by any part (first appearance first) and ``parts`` holds each part
    resolved; without, ``parts`` is empty and the top-level keys are the only block.
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
    budgets: list[dict[str, Any]] | None = None
    executor: dict[str, Any] | None = None
    source_path: Path | None = None
    source_text: str = ""
    lines: Lines = field(default_factory=dict, repr=False, compare=False)
    parts: tuple[SuitePart, ...] = ()

    def problem(self, loc: Loc, message: str) -> Problem:
        """A :class:`Problem` located at field ``loc`` of this suite's file (for later checks)."""
        file = str(self.source_path) if self.source_path is not None else f"<suite {self.name}>"
        return Problem(file, _line_for(self.lines, loc), format_loc(loc), message)

    def blocks(self) -> list[SuitePart]:
        """The parts, or one block made of the top-level keys for a suite without parts."""
        if self.parts:
            return list(self.parts)
        return [
            SuitePart(
                "", None, self.seeds, self.datasets, self.settings, self.backbones,
                self.train, self.test, self.learners,
            )
        ]  # fmt: skip

    def locate(self, key: str, value: Any) -> Loc:
        """Where ``value`` (a dataset/backbone :class:`Component`, a :class:`Setting` or a learner
        :class:`Component`) is written, e.g. ``('parts', 1, 'learners', 0)``; for later checks."""
        for part in self.blocks():
            for i, item in enumerate(getattr(part, key)):
                if key == "learners" and _learner_matches(item, value):
                    return (*part.loc(key), i)
                if key != "learners" and item == value:
                    return (*part.loc(key), i)
        return (key,)


def _learner_matches(entry: Any, comp: Any) -> bool:
    """Whether raw learner ``entry`` can produce learner :class:`Component` ``comp``."""
    if not isinstance(entry, dict) or entry.get("name") != getattr(comp, "name", None):
        return False
    params = getattr(comp, "params", {})
    for k, v in entry.items():
        if k in ("name", "train", "test") or k not in params:
            continue
        if not (params[k] in v if isinstance(v, list) else params[k] == v):
            return False
    return True


def _distinct(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


# ----------------------------------------------------------------------------- validation


def _component(
    registry: Registry[Any], entry: Any, loc: Loc, out: list[tuple[Loc, str]]
) -> tuple[Any, dict[str, Any]] | None:
    """Check an entry's ``name``; return (registry entry, other keys) or None."""
    if not isinstance(entry, dict):
        out.append((loc, f"must be a mapping with a 'name' key (got {_short(entry)})"))
        return None
    name = entry.get("name")
    if "name" not in entry:
        out.append(((*loc, "name"), f"required (one of: {', '.join(registry.names())})"))
        return None
    if not isinstance(name, str):
        out.append(((*loc, "name"), f"must be a string (got {_short(name)})"))
        return None
    if name not in registry:
        out.append(((*loc, "name"), unknown_name_message(registry.kind, name, registry.names())))
        return None
    return registry.get(name), {k: v for k, v in entry.items() if k != "name"}


def _plain_component(
    registry: Registry[Any], entry: Any, loc: Loc, out: list[tuple[Loc, str]]
) -> Component | None:
    found = _component(registry, entry, loc, out)
    if found is None:
        return None
    reg, params = found
    model = _validate(reg.params, params, loc, out, extra_keys=["name"])
    return None if model is None else Component(reg.name, model.model_dump())


@dataclass(frozen=True)
class _LearnerCell:
    learner: Component
    train: TrainConfig
    test: TestConfig
    choice: dict[str, int]  # list-valued param -> index of its value


def _learner_cells(
    entry: Any,
    loc: Loc,
    train: TrainConfig | None,
    test: TestConfig | None,
    out: list[tuple[Loc, str]],
) -> list[_LearnerCell]:
    """Validate one learner entry and expand its list-valued params (sorted by name)."""
    found = _component(LEARNERS, entry, loc, out)
    raw = entry if isinstance(entry, dict) else {}
    configs: dict[str, BaseModel | None] = {}
    for key, model, base in (("train", TrainConfig, train), ("test", TestConfig, test)):
        over = raw.get(key, {})
        if not isinstance(over, dict):
            out.append(((*loc, key), f"must be a mapping of {key} overrides (got {_short(over)})"))
            configs[key] = None
            continue
        merged = {**(base.model_dump() if base is not None else {}), **over}
        configs[key] = _validate(model, merged, (*loc, key), out, only=set(map(str, over)))
    params = {k: v for k, v in raw.items() if k not in ("name", "train", "test")}
    axes = sorted(k for k, v in params.items() if isinstance(v, list))
    ok = True
    for k in axes:
        if not params[k]:
            out.append(((*loc, k), "must not be empty (a list gives one cell per value)"))
            ok = False
    n = math.prod(len(params[k]) for k in axes)
    if ok and n > MAX_LEARNER_CELLS:
        out.append((loc, f"list-valued params expand to {n} cells (at most {MAX_LEARNER_CELLS})"))
        ok = False
    if found is None or not ok:
        return []
    reg = found[0]
    cells: list[_LearnerCell] = []
    seen: set[tuple[Loc, str]] = set()
    for idx in itertools.product(*(range(len(params[k])) for k in axes)):
        choice = dict(zip(axes, idx, strict=True))
        values = {k: (params[k][choice[k]] if k in choice else v) for k, v in params.items()}
        errs: list[tuple[Loc, str]] = []
        model = _validate(
            reg.params, values, loc, errs, extra_keys=["name", "train", "test"], list_axes=choice
        )
        for e in errs:
            if e not in seen:
                seen.add(e)
                out.append(e)
        if model is not None and configs["train"] is not None and configs["test"] is not None:
            comp = Component(reg.name, model.model_dump())
            cells.append(_LearnerCell(comp, configs["train"], configs["test"], choice))  # type: ignore[arg-type]
    return cells if len(cells) == n else []


Block = tuple[SuitePart, list[list[_LearnerCell]]]


def _entries(data: dict[Any, Any], prefix: Loc, out: list[tuple[Loc, str]]) -> dict[str, Any]:
    """Validate the datasets/settings/backbones entries given in ``data`` (absent: not a key)."""
    checks: dict[str, Any] = {
        "datasets": lambda e, loc: _plain_component(DATASETS, e, loc, out),
        "backbones": lambda e, loc: _plain_component(BACKBONES, e, loc, out),
        "settings": lambda e, loc: _validate(Setting, e, loc, out),
    }
    got: dict[str, Any] = {}
    for key, check in checks.items():
        value = data.get(key)
        if isinstance(value, list):
            got[key] = [check(e, (*prefix, key, i)) for i, e in enumerate(value)]
    return got


def _part_config(
    model: type[BaseModel],
    key: str,
    part: dict[Any, Any],
    top: Any,
    base: Any,
    ploc: Loc,
    out: list[tuple[Loc, str]],
) -> Any:
    """A part's train/test: its keys merged over the top-level ones (problems at its keys)."""
    over = part.get(key)
    if not isinstance(over, dict):
        return base  # absent (or not a mapping: reported by _PartTop)
    merged = {**(top if isinstance(top, dict) else {}), **over}
    return _validate(model, merged, (*ploc, key), out, only=set(map(str, over)))


def _build(
    data: Any, file: str, lines: Lines, path: Path | None, text: str
) -> tuple[Suite | None, list[Problem]]:
    """Validate raw suite data; return the suite (if valid) and every problem found."""
    out: list[tuple[Loc, str]] = []
    if not isinstance(data, dict):
        return None, [
            Problem(
                file, _line_for(lines, ()), "", f"suite must be a YAML mapping (got {_short(data)})"
            )
        ]
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    top = _validate(_SuiteTop, data, (), out)
    raw_parts = data.get("parts")
    if raw_parts is None:
        out.extend(((key,), "required") for key in AXES if data.get(key) is None)
    entries = _entries(data, (), out)
    configs: dict[str, Any] = {}
    for key, model in (("train", TrainConfig), ("test", TestConfig)):
        value = data.get(key, {})
        configs[key] = _validate(model, value, (key,), out) if isinstance(value, dict) else None

    def learners_of(raw: Any, loc: Loc, train: Any, test: Any) -> list[list[_LearnerCell]]:
        items = raw if isinstance(raw, list) else []
        return [_learner_cells(e, (*loc, i), train, test, out) for i, e in enumerate(items)]

    top_learners = learners_of(
        data.get("learners"), ("learners",), configs["train"], configs["test"]
    )
    pending: list[tuple[int, dict[Any, Any], Any, dict[str, Any], Any, Any, Any]] = []
    for i, raw in enumerate(raw_parts if isinstance(raw_parts, list) else []):
        ploc: Loc = ("parts", i)
        ptop = _validate(_PartTop, raw, ploc, out)
        if not isinstance(raw, dict):
            continue
        out.extend(
            ((*ploc, key), "required (in this part or at the top level)")
            for key in AXES
            if raw.get(key) is None and data.get(key) is None
        )
        got = _entries(raw, ploc, out)
        train = _part_config(
            TrainConfig, "train", raw, data.get("train"), configs["train"], ploc, out
        )
        test = _part_config(TestConfig, "test", raw, data.get("test"), configs["test"], ploc, out)
        if raw.get("learners") is not None:
            lcells = learners_of(raw["learners"], (*ploc, "learners"), train, test)
        elif "train" in raw or "test" in raw:
            lcells = learners_of(data.get("learners"), ("learners",), train, test)
        else:
            lcells = top_learners
        pending.append((i, raw, ptop, got, train, test, lcells))
    if out or not isinstance(top, _SuiteTop):
        return None, _problems(file, lines, out)
    blocks: list[Block] = []
    for i, raw, ptop, got, train, test, lcells in pending:
        assert isinstance(ptop, _PartTop)
        part = SuitePart(
            name=ptop.name,
            description=ptop.description,
            index=i,
            seeds=list(ptop.seeds if ptop.seeds is not None else top.seeds),
            datasets=got.get("datasets", entries.get("datasets", [])),
            settings=got.get("settings", entries.get("settings", [])),
            backbones=got.get("backbones", entries.get("backbones", [])),
            train=train,
            test=test,
            learners=list(raw.get("learners") or top.learners or []),
            own=frozenset(k for k in raw if raw[k] is not None),
        )
        blocks.append((part, lcells))
    parts = [b[0] for b in blocks]
    keys = ("datasets", "settings", "backbones", "learners", "seeds")
    if parts:  # every distinct value used by a part
        used = {k: _distinct(x for p in parts for x in getattr(p, k)) for k in keys}
    else:
        used = {**entries, "learners": list(top.learners or []), "seeds": list(top.seeds)}
    suite = Suite(
        name=top.name,
        description=top.description,
        seeds=used["seeds"],
        device=top.device,
        datasets=used["datasets"],
        settings=used["settings"],
        backbones=used["backbones"],
        train=configs["train"],
        test=configs["test"],
        learners=used["learners"],
        budgets=top.budgets,
        executor=top.executor,
        source_path=path,
        source_text=text,
        lines=lines,
        parts=tuple(parts),
    )
    if not parts:
        blocks = [(suite.blocks()[0], top_learners)]
    out.extend(_duplicates(suite.name, blocks))
    return (None if out else suite), _problems(file, lines, out)


def _problems(file: str, lines: Lines, out: list[tuple[Loc, str]]) -> list[Problem]:
    problems = [Problem(file, _line_for(lines, loc), format_loc(loc), msg) for loc, msg in out]
    return _sorted_unique(problems)


def _sorted_unique(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: p.line if p.line is not None else 0)


def _product(suite_name: str, blocks: list[Block]) -> Iterable[tuple[Cell, tuple[int, ...]]]:
    """Cells part by part, each in order datasets x settings x backbones x learners (x values)
    x seeds. Each comes with an index tuple (part, dataset, ...) used to locate duplicates."""
    for pi, (p, learner_cells) in enumerate(blocks):
        for di, d in enumerate(p.datasets):
            for si, s in enumerate(p.settings):
                for bi, b in enumerate(p.backbones):
                    for li, lcells in enumerate(learner_cells):
                        for ci, lc in enumerate(lcells):
                            for ri, seed in enumerate(p.seeds):
                                cell = Cell(
                                    suite_name, d, s, b, lc.learner, lc.train, lc.test, seed
                                )
                                yield cell, (pi, di, si, bi, li, ci, ri)


def _duplicates(suite_name: str, blocks: list[Block]) -> list[tuple[Loc, str]]:
    """Problems for cells whose full configuration repeats an earlier cell."""
    first: dict[str, tuple[int, ...]] = {}
    out: dict[Loc, str] = {}
    for cell, idx in _product(suite_name, blocks):
        prev = first.setdefault(cell.id, idx)
        if prev == idx:
            continue
        pos = next(i for i in range(7) if prev[i] != idx[i])
        part, learner_cells = blocks[idx[0]]
        if pos == 0:
            loc: Loc = ("parts", idx[0])
            other = f"a cell of {format_loc(('parts', prev[0]))}"
        elif pos in (1, 2, 3, 6):
            key = ("", "datasets", "settings", "backbones", "", "", "seeds")[pos]
            loc, other = (*part.loc(key), idx[pos]), format_loc((*part.loc(key), prev[pos]))
        elif pos == 4:
            loc = (*part.loc("learners"), idx[4])
            other = format_loc((*part.loc("learners"), prev[4]))
        else:
            a = learner_cells[idx[4]][prev[5]].choice
            b = learner_cells[idx[4]][idx[5]].choice
            k = next(k for k in sorted(b) if a[k] != b[k])
            base = (*part.loc("learners"), idx[4], k)
            loc, other = (*base, b[k]), format_loc((*base, a[k]))
        out.setdefault(loc, f"duplicate cell: same configuration as {other} ({cell.label()})")
    return list(out.items())


# ----------------------------------------------------------------------------- public API


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; raise :class:`SuiteError` listing every problem."""
    path = Path(path)
    file = str(path)
    text, data, lines = _read(path, file)
    suite, problems = _build(data, file, lines, path, text)
    if problems or suite is None:
        raise SuiteError(problems or [Problem(file, None, "", "invalid suite")])
    return suite


def suite_from_dict(data: Any, file: str = "<suite>") -> Suite:
    """Validate an in-memory suite (no line numbers); raise :class:`SuiteError` on problems."""
    suite, problems = _build(data, file, {}, None, "")
    if problems or suite is None:
        raise SuiteError(problems or [Problem(file, None, "", "invalid suite")])
    return suite


def expand(suite: Suite) -> list[Cell]:
    """All cells of ``suite`` in a deterministic order (see :func:`_product`)."""
    out: list[tuple[Loc, str]] = []
    blocks: list[Block] = []
    for part in suite.blocks():
        prefix = part.loc("learners")
        lcells = [
            _learner_cells(e, (*prefix, i), part.train, part.test, out)
            for i, e in enumerate(part.learners)
        ]
        blocks.append((part, lcells))
    if out:
        raise SuiteError([suite.problem(loc, msg) for loc, msg in out])
    return [cell for cell, _ in _product(suite.name, blocks)]


def filter_cells(cells: Sequence[Cell], pattern: str | None) -> list[Cell]:
    """Cells matching ``--only PATTERN``: comma-separated fnmatch patterns (case-insensitive)
    tried against the cell id, the learner name and the cell label. Blank keeps all cells."""
    alts = [p.strip().lower() for p in (pattern or "").split(",") if p.strip()]
    if not alts:
        return list(cells)

    def hit(cell: Cell) -> bool:
        keys = (cell.id.lower(), cell.learner.name.lower(), cell.label().lower())
        return any(fnmatch.fnmatchcase(k, p) for p in alts for k in keys)

    return [c for c in cells if hit(c)]


def describe_cells(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """One flat row per cell for tables: id, label and the main coordinates."""
    rows = []
    for c in cells:
        s = c.setting
        params = ",".join(f"{k}={v}" for k, v in sorted(c.learner.params.items()))
        rows.append(
            {
                "id": c.id,
                "label": c.label(),
                "suite": c.suite,
                "learner": c.learner.name,
                "params": params,
                "dataset": c.dataset.name,
                "setting": f"{s.ways}w{s.shots}s{s.queries}q",
                "backbone": c.backbone.label(),
                "seed": c.seed,
                "iterations": c.train.iterations,
                "protocol": c.test.protocol,
            }
        )
    return rows


# ----------------------------------------------------------------------------- JSON Schema


def _model_schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` hoisted into ``defs``."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    return schema


def _entries_schema(registry: Registry[Any], defs: dict[str, Any], lists: bool) -> dict[str, Any]:
    """A oneOf over the registry's entries, discriminated on a ``name`` const."""
    variants = []
    for entry in registry:
        schema = _model_schema(entry.params, defs)
        props: dict[str, Any] = {}
        for key, sub in schema.get("properties", {}).items():
            if lists:
                scalars = {"type": "array", "items": sub, "minItems": 1}
                meta = {k: sub[k] for k in ("title", "description", "default") if k in sub}
                sub = {"anyOf": [sub, scalars], **meta}
            props[key] = sub
        props = {"name": {"const": entry.name, "description": entry.summary}, **props}
        if lists:
            props["train"] = {"$ref": "#/$defs/TrainConfig", "description": "overrides"}
            props["test"] = {"$ref": "#/$defs/TestConfig", "description": "overrides"}
        variants.append(
            {
                "type": "object",
                "title": entry.name,
                "properties": props,
                "required": ["name"],
                "additionalProperties": False,
            }
        )
    items: dict[str, Any] = {"oneOf": variants} if variants else {"type": "object"}
    return {"type": "array", "minItems": 1, "items": items}


def suite_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of suite files, for editors; built from the registries."""
    defs: dict[str, Any] = {}
    for model in (Setting, TrainConfig, TestConfig):
        defs[model.__name__] = _model_schema(model, defs)
    seeds = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    }
    axes: dict[str, Any] = {
        "seeds": seeds,
        "datasets": _entries_schema(DATASETS, defs, lists=False),
        "settings": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Setting"}},
        "backbones": _entries_schema(BACKBONES, defs, lists=False),
        "train": {"$ref": "#/$defs/TrainConfig"},
        "test": {"$ref": "#/$defs/TestConfig"},
        "learners": _entries_schema(LEARNERS, defs, lists=True),
    }
    defs["Part"] = {
        "type": "object",
        "title": "Part",
        "description": "a block of cells: each key replaces the top-level one for this part "
        "(train/test: key by key); cells are the concatenation over parts",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 100, "description": "documentation only"},
            "description": {"type": "string"},
            **axes,
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "memcomp suite",
        "type": "object",
        "additionalProperties": False,
        "patternProperties": {"^x-": {"description": "ignored (e.g. to hold YAML anchors)"}},
        "required": ["name"],
        "anyOf": [{"required": list(AXES)}, {"required": ["parts"]}],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 100},
            "description": {"type": "string"},
            "device": {"enum": ["auto", "cpu", "cuda"], "default": "auto"},
            **axes,
            "seeds": {**seeds, "default": [0]},
            "parts": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Part"}},
            "budgets": {"type": "array", "items": {"type": "object"}},
            "executor": {"type": "object"},
        },
        "$defs": defs,
    }
