"""``memcomp check --update``: rewrite ``baseline_mb`` values, keeping comments and layout.

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
from memcomp.budgets.spec import BudgetFile
from memcomp.errors import InputError
from memcomp.fsutil import atomic_write_text as _atomic_write
from memcomp.fsutil import remove_stale_temps


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
    remove_stale_temps(path)  # left by an --update that was killed while writing
    _atomic_write(path, new)
    return len(values)
