"""YAML input files with a line map: every field path can be traced to the line it is written on.

PyYAML's composer gives the node tree (with marks) before Python objects are built, so duplicate
keys are found before merge keys (``<<:``) are applied and a key merged from an anchor points at
the line where the anchor wrote it. Reading never executes tags (safe loader) and reads ``1e-3`` as
a float (YAML 1.2). Unreadable files, non-UTF-8 text, syntax errors and pathological nesting all
become one :class:`~memcomp.config.problems.Problem`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memcomp.config.problems import ConfigError, Loc, Problem, format_loc


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
_NULL_TAG = "tag:yaml.org,2002:null"


def _key_text(node: yaml.Node) -> str:
    """A mapping key as field paths spell it: as written, a null key (``~``, empty) as ``null``."""
    if isinstance(node, yaml.ScalarNode):
        return "null" if node.tag == _NULL_TAG else str(node.value)
    return f"<{node.tag}>"


def _duplicate_keys(root: yaml.Node) -> list[tuple[Loc, int, str]]:
    """Mapping keys written twice (path, 1-based line, key); run before merge keys are applied,
    so that a key overriding one merged in with ``<<:`` is not a duplicate."""
    dups: list[tuple[Loc, int, str]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:  # iterative: deep nesting cannot overflow the Python stack
        node, path = stack.pop()
        if id(node) in seen:  # aliases may share (or recursively contain) nodes
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                if k.tag == _MERGE_TAG:
                    continue
                key = _key_text(k)
                if key in keys:
                    dups.append(((*path, key), k.start_mark.line + 1, key))
                    continue
                keys.add(key)
                stack.append((v, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return sorted(dups, key=lambda d: d[1])


class Lines:
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
                    if isinstance(k, yaml.ScalarNode) and _key_text(k) == part:
                        found = (k.start_mark.line + 1, v)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    item = node.value[part]
                    found = (item.start_mark.line + 1, item)
            if found is None:
                return None
            line, node = found
        return line


LineMap = Mapping[Loc, int] | Lines


def line_of(lines: LineMap, loc: Loc) -> int | None:
    """The line of ``loc`` or of its nearest enclosing node present in the file."""
    parts = tuple(p if isinstance(p, int) else str(p) for p in loc)
    for n in range(len(parts), -1, -1):
        line = lines.get(parts[:n])
        if line is not None:
            return line
    return None


@dataclass(frozen=True)
class Source:
    """A parsed input file: its name, text, Python data and where each field path is written."""

    file: str
    text: str
    data: Any
    lines: LineMap = field(default_factory=dict, repr=False, compare=False)
    path: Path | None = None

    def problem(self, loc: Loc, message: str) -> Problem:
        """A :class:`Problem` at field ``loc`` of this file (its line found in the line map)."""
        return Problem(self.file, line_of(self.lines, loc), format_loc(loc), message)

    def problems(self, found: list[tuple[Loc, str]]) -> list[Problem]:
        """Problems for ``(loc, message)`` pairs, without repeats, in line order."""
        from memcomp.config.problems import sorted_unique

        return sorted_unique(self.problem(loc, msg) for loc, msg in found)


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


def _fail(file: str, line: int | None, message: str) -> ConfigError:
    return ConfigError([Problem(file, line, "", message)])


def parse_yaml(text: str, file: str, what: str = "suite", path: Path | None = None) -> Source:
    """Parse ``text``; YAML errors, an empty document and duplicate keys raise ConfigError."""
    try:
        node, data, dups = _compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        if isinstance(e, yaml.reader.ReaderError):
            line = text.count("\n", 0, max(e.position, 0)) + 1
        what_ = " ".join(
            str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x
        )
        raise _fail(file, line, f"YAML syntax error: {what_ or e}") from None
    except RecursionError:
        raise _fail(file, None, "YAML error: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:
        raise _fail(file, None, f"YAML error: {e}") from None
    if node is None:
        raise _fail(file, 1, f"{what} file is empty")
    if dups:
        problems = [
            Problem(file, ln, format_loc(loc), f"duplicate key {key!r}") for loc, ln, key in dups
        ]
        raise ConfigError(problems)
    return Source(file, text, data, Lines(node), path)


def read_yaml(path: Path | str, what: str = "suite") -> Source:
    """Read and parse a YAML file; unreadable files and YAML errors raise ConfigError."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _fail(file, None, f"cannot read file: not UTF-8 text ({e})") from None
    except OSError as e:
        raise _fail(file, None, f"cannot read file: {e.strerror or e}") from None
    return parse_yaml(text, file, what, path)
