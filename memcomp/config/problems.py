"""Problem messages shared by suites and budget files: ``file:line: field: message``.

Every pydantic error is turned into one short line here (``must be > 0 (got -0.1)``, unknown keys
and names with a did-you-mean suggestion), so a mistake reads the same wherever it is made.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from memcomp.errors import InputError
from memcomp.registry import unknown_name_message

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
TAG = "\x1f"  # prefix of pydantic union tags: dropped from field paths
COMPONENT_ERROR = "component"  # custom error type of a failed ``name`` discriminator
Loc = tuple[str | int, ...]
_SIMPLE_KEY = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where (file, 1-based line, field path) and what."""

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


class ConfigError(InputError):
    """An input file is invalid; ``problems`` lists everything found, one per line in str()."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


SuiteError = ConfigError  # the name callers have used for suite problems


def format_loc(loc: Iterable[str | int | None]) -> str:
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


def short(value: Any) -> str:
    """A value as the message shows it: ``a mapping``, ``null``, a repr cut at 60 characters."""
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
}
_COMPARE = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _component(loc: Loc, value: Any, ctx: dict[str, Any]) -> tuple[Loc, str]:
    """A failed ``name`` discriminator: not a mapping, no name, or an unknown name."""
    kind, names = str(ctx.get("kind", "component")), str(ctx.get("names", ""))
    valid = [n for n in names.split(", ") if n]
    if not isinstance(value, dict):
        return loc, f"must be a mapping with a 'name' key (got {short(value)})"
    if "name" not in value:
        return (*loc, "name"), f"required (one of: {names})"
    name = value["name"]
    if not isinstance(name, str):
        return (*loc, "name"), f"must be a string (got {short(name)})"
    return (*loc, "name"), unknown_name_message(kind, name, valid)


def message(err: Any, valid_keys: Sequence[str] = ()) -> str:
    """One pydantic error as a short message, e.g. ``must be > 0 (got -0.1)``."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return unknown_name_message("key", str(err["loc"][-1]), sorted(valid_keys))
    if kind == "missing":
        return "required"
    if kind == "invalid_key":
        return f"keys must be strings (got {short(err.get('input'))}): quote it to use it as text"
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
    elif kind == "value_error" and ctx.get("error") is not None:
        msg = str(ctx["error"])  # a validator's own message, e.g. a learner's model validator
        if not err.get("loc"):
            return msg  # about the whole entry: its values are in the message's location
    else:
        text = str(err.get("msg", kind))
        msg = text[:1].lower() + text[1:]
    return f"{msg} (got {short(err.get('input'))})"


def validation_problems(
    e: ValidationError, loc: Loc = (), model: type[BaseModel] | None = None
) -> list[tuple[Loc, str]]:
    """``(field path, message)`` for every error of ``e``, union tags dropped from the paths."""
    out: list[tuple[Loc, str]] = []
    for err in e.errors():
        raw: Loc = tuple(err["loc"])
        eloc: Loc = tuple(p for p in raw if not (isinstance(p, str) and p.startswith(TAG)))
        if err["type"] == "invalid_key" and eloc:  # a null/number/bool key: as YAML spells it
            key = err.get("input")
            text = short(key) if key is None or isinstance(key, bool) else str(key)
            out.append(((*loc, *eloc[:-1], text), message(err)))
            continue
        if err["type"] == COMPONENT_ERROR:
            out.append(_component((*loc, *eloc), err.get("input"), err.get("ctx") or {}))
            continue
        extra = err["type"] == "extra_forbidden" and model is not None
        valid = keys_at(model, raw) if extra and model is not None else []
        out.append(((*loc, *eloc), message(err, valid)))
    return out


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: Annotated, Optional, unions and lists unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _tagged(annotation: Any, tag: str) -> Any:
    """The member of a tagged union whose pydantic ``Tag`` is ``tag``."""
    if get_origin(annotation) is Annotated:
        inner, *meta = get_args(annotation)
        if any(getattr(m, "tag", None) == tag for m in meta):
            return inner
        return _tagged(inner, tag)
    for a in get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ():
        found = _tagged(a, tag)
        if found is not None:
            return found
    return None


def keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Keys valid in the mapping that holds the last key of ``loc`` (walking the annotations)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, str) and part.startswith(TAG):
            current = _tagged(current, part) or current
        elif isinstance(part, int):
            lists = [m for m in _members(current) if get_origin(m) is list]
            current = get_args(lists[0])[0] if lists else current
        else:
            models = [m for m in _members(current) if isinstance(m, type)]
            models = [m for m in models if issubclass(m, BaseModel) and part in m.model_fields]
            if not models:
                return []
            current = models[0].model_fields[str(part)].annotation
    found = [m for m in _members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    return list(found[0].model_fields) if found else []


def validate(
    model: type[BaseModel], data: Any, loc: Loc, out: list[tuple[Loc, str]]
) -> BaseModel | None:
    """Validate ``data`` strictly; append ``(loc, message)`` problems and return None on error."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as e:
        out.extend(validation_problems(e, loc, model))
        return None


def sorted_unique(problems: Iterable[Problem]) -> list[Problem]:
    """Problems without repeats, in line order (file-level ones first)."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: p.line if p.line is not None else 0)
