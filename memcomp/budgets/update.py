"""``memcomp check --update``: rewrite one memory source's ``baseline_mb`` values, keeping the
other source's, the comments and the layout.

PyYAML's composer gives each node's position in the text, so the new values are spliced into the
original text (no re-dump: comments, quoting and flow style stay as written), then the result is
parsed again and checked before it replaces the file atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import yaml

from memcomp.budgets.measure import Outcome
from memcomp.budgets.spec import SOURCES, BudgetFile
from memcomp.errors import InputError
from memcomp.fsutil import atomic_write_text as _atomic_write
from memcomp.fsutil import remove_stale_temps


def _content_end(node: yaml.Node) -> int:
    """Index just after the last character of ``node``'s own text (not trailing comments)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False) or not node.value:
        return node.end_mark.index
    last = node.value[-1]
    return _content_end(last[1] if isinstance(last, tuple) else last)


def _flow_insert(text: str, node: yaml.MappingNode, entry: str) -> tuple[int, int, str]:
    """Edit appending ``entry`` (``key: value``) inside a flow mapping's ``{...}``."""
    close = text.rindex("}", 0, node.end_mark.index)
    at = len(text[:close].rstrip())
    sep = ", " if node.value else ""
    return at, at, f"{sep}{entry}"


def _block_insert(text: str, node: yaml.MappingNode, entry: str) -> tuple[int, int, str]:
    """Edit appending ``entry`` as a new line of a block mapping, at its keys' indentation."""
    indent = " " * node.value[0][0].start_mark.column
    eol = text.find("\n", _content_end(node.value[-1][1]))
    eol = len(text) if eol < 0 else eol
    return eol, eol, f"\n{indent}{entry}"


def _set_key(text: str, node: yaml.MappingNode, key: str, value: str) -> tuple[int, int, str]:
    """Edit setting ``key`` of ``node`` to the YAML text ``value`` (in place, or appended)."""
    found = next((v for k, v in node.value if k.value == key), None)
    if found is not None:
        return found.start_mark.index, found.end_mark.index, value
    if node.flow_style:
        return _flow_insert(text, node, f"{key}: {value}")
    return _block_insert(text, node, f"{key}: {value}")


def rewrite_baselines(
    text: str,
    values: dict[int, float],
    list_key: str = "budgets",
    source: str = "cpu-estimate",
    stated: dict[int, str] | None = None,
) -> str:
    """Set the ``source`` baseline of the budgets at ``values``' indices, keeping comments,
    layout and the other source's baseline.

    ``stated[i]`` is the source a plain number means in budget ``i`` (default: ``source``). A
    plain ``baseline_mb`` of ``source`` is replaced in place; one of the other source becomes a
    mapping ``{<its source>: <its text>, <source>: <new>}``; in a mapping the key is set or
    appended. A budget without ``baseline_mb`` gets a plain number when ``source`` is its stated
    source, else a one-entry mapping (inside ``{...}`` for flow budgets, as a new line for block
    ones).
    """
    stated = stated or {}
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
        new, own = f"{value:.3f}", stated.get(i, source)
        found = next((v for k, v in node.value if k.value == "baseline_mb"), None)
        if isinstance(found, yaml.MappingNode):
            edits.append(_set_key(text, found, source, new))
        elif found is not None and own == source:
            edits.append((found.start_mark.index, found.end_mark.index, new))
        elif found is not None:  # a plain number of the other source: both, as a mapping
            old = text[found.start_mark.index : found.end_mark.index]
            pair = f"{{{own}: {old}, {source}: {new}}}"
            edits.append((found.start_mark.index, found.end_mark.index, pair))
        else:
            edits.append(_set_key(text, node, "baseline_mb", new if own == source else
                                  f"{{{source}: {new}}}"))  # fmt: skip
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text


def _baseline(entry: dict, source: str, stated: str) -> float | None:
    """The ``source`` baseline written in a raw budget entry."""
    value = entry.get("baseline_mb")
    if isinstance(value, dict):
        return value.get(source)
    return value if value is not None and stated == source else None


def update_file(
    path: Path, budgets: BudgetFile, outcomes: Sequence[Outcome], source: str = "cpu-estimate"
) -> int:
    """Rewrite the ``source`` baselines from this run's measurements, keeping the other source's;
    return how many were written."""
    values = {
        o.budget.index: o.measured_mb
        for o in outcomes
        if o.measured_mb is not None and not math.isnan(o.measured_mb)
    }
    if not values:
        return 0
    stated = {b.index: b.source for b in budgets.budgets}
    text = path.read_text(encoding="utf-8")
    new = rewrite_baselines(text, values, budgets.list_key, source, stated)
    check = yaml.safe_load(new)[budgets.list_key]
    others = [s for s in SOURCES if s != source]
    for b in budgets.budgets:
        entry, want = check[b.index], values.get(b.index)
        got = _baseline(entry, source, b.source)
        ok = want is None or (got is not None and abs(float(got) - round(want, 3)) <= 1e-9)
        ok = ok and all(_baseline(entry, s, b.source) == b.baselines.get(s) for s in others)
        if not ok:
            raise RuntimeError(f"rewriting {path} went wrong at {budgets.list_key}[{b.index}]")
    remove_stale_temps(path)  # left by an --update that was killed while writing
    _atomic_write(path, new)
    return len(values)
