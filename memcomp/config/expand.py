"""Expansion of a validated suite into cells, with the checks on the whole product.

Counting comes first (from the lengths of the axes and of list-valued learner parameters), so a
suite that would expand to millions of cells is refused before any cell is built. Each cell
records where its dataset, setting, backbone, learner and seed are written (``Cell.where``).
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from memcomp.config.cells import Cell, Component
from memcomp.config.compiling import compile_problem
from memcomp.config.problems import Loc, format_loc, validation_problems
from memcomp.config.settings import TestConfig, TrainConfig, merged

if TYPE_CHECKING:
    from memcomp.config.components import LearnerEntry
    from memcomp.config.suite import SuitePart

MAX_CELLS = 100_000  # a suite expanding to more is refused before any cell is built
MAX_LEARNER_CELLS = 10_000
MAX_COMBINATION_PROBLEMS = 3  # failing combinations reported per learner entry (then a count)


@dataclass(frozen=True)
class LearnerCell:
    """One learner configuration of an entry: its typed parameters and merged train/test."""

    learner: Component
    train: TrainConfig
    test: TestConfig
    choice: dict[str, int]  # list-valued param -> index of its value


Block = tuple["SuitePart", list[list[LearnerCell]]]


def suite_cells(
    name: str, parts: Sequence[SuitePart], multipart: bool, out: list[tuple[Loc, str]]
) -> list[Cell]:
    """The cells of a validated suite named ``name``, in order; its problems (too many cells, a
    learner combination its model or ``train.compile`` refuses, a repeated cell) are appended to
    ``out`` instead (then no cells). The count comes first: nothing is built for a suite over
    :data:`MAX_CELLS`."""
    total, biggest = count_cells(parts, out)
    if not out and total > MAX_CELLS:
        loc: Loc = ("parts", biggest) if multipart else ("learners",)
        msg = f"the suite expands to {total:,} cells (at most {MAX_CELLS:,})"
        out.append((loc, msg + ": use fewer list values or seeds, or split it into several suites"))
    if out:
        return []
    blocks: list[Block] = [
        (p, [learner_cells(e, p, (*p.loc("learners"), i), out) for i, e in enumerate(p.learners)])
        for p in parts
    ]
    if out:
        return []
    cells = list(product(name, blocks))
    out.extend(duplicates(cells, blocks))
    return [] if out else [c for c, _ in cells]


def count_cells(parts: Sequence[SuitePart], out: list[tuple[Loc, str]]) -> tuple[int, int]:
    """(cells of the whole suite, index of the part with the most), without building any; a
    learner entry over :data:`MAX_LEARNER_CELLS` is a problem appended to ``out``."""
    sizes = []
    for part in parts:
        per_learner = 0
        for i, entry in enumerate(part.learners):
            n = entry.count()
            if n > MAX_LEARNER_CELLS:
                loc = (*part.loc("learners"), i)
                out.append((loc, f"list-valued params expand to {n} cells "
                                 f"(at most {MAX_LEARNER_CELLS})"))  # fmt: skip
            per_learner += n
        axes = (part.datasets, part.settings, part.backbones, part.seeds)
        sizes.append(math.prod(len(a) for a in axes) * per_learner)
    return sum(sizes), max(range(len(sizes)), key=sizes.__getitem__)


def learner_cells(
    entry: LearnerEntry, part: SuitePart, loc: Loc, out: list[tuple[Loc, str]]
) -> list[LearnerCell]:
    """Expand one learner entry (list-valued params, sorted by name) under ``part``.

    Each combination is validated by the learner's own parameter model, so its field and model
    validators hold for every cell; a combination they refuse is a problem at the entry
    (``loc``), or at the list value of the field named (e.g. ``learners[0].lam[1]``).
    """
    train = merged(part.train, entry.train)
    test = merged(part.test, entry.test)
    cells, failed = [], 0
    for idx in itertools.product(*(range(len(entry.values[k])) for k in entry.axes)):
        choice = dict(zip(entry.axes, idx, strict=True))
        values = {k: (v[choice[k]] if k in choice else v) for k, v in entry.values.items()}
        try:
            model = entry.model.model_validate(values, strict=True)
        except ValidationError as e:
            failed += 1
            if failed <= MAX_COMBINATION_PROBLEMS:
                out.extend(_combination_problems(e, entry, values, choice, loc))
            continue
        refused = compile_problem(entry.name, model, train.compile)
        if refused:  # the same for every combination: reported once
            if not failed:
                out.append((loc, refused))
            failed += 1
            continue
        cells.append(LearnerCell(Component(entry.name, model), train, test, choice))
    if failed > MAX_COMBINATION_PROBLEMS:
        more = failed - MAX_COMBINATION_PROBLEMS
        out.append((loc, f"... and {more} more combinations of its list values fail the same way"))
    return cells


def _combination_problems(
    e: ValidationError, entry: LearnerEntry, values: dict[str, Any], choice: dict[str, int],
    loc: Loc,
) -> list[tuple[Loc, str]]:  # fmt: skip
    """The learner model's errors for one combination, at the field (and list value) named."""
    found = []
    which = ", ".join(f"{k}={values[k]!r}" for k in entry.axes)
    for where, msg in validation_problems(e, ()):
        field = where[0] if where else None
        if field in choice:
            where = (field, choice[field], *where[1:])
        elif not where and which:
            msg = f"{msg} (with {which})"
        found.append(((*loc, *where), msg))
    return found


Indexed = tuple[Cell, tuple[int, ...]]


def product(suite_name: str, blocks: list[Block]) -> Iterable[Indexed]:
    """Cells part by part, each in order datasets x settings x backbones x learners (x values)
    x seeds. Each comes with an index tuple (part, dataset, ...) used to locate duplicates."""
    for pi, (p, learner_cells_) in enumerate(blocks):
        for di, d in enumerate(p.datasets):
            for si, s in enumerate(p.settings):
                for bi, b in enumerate(p.backbones):
                    for li, lcells in enumerate(learner_cells_):
                        for ci, lc in enumerate(lcells):
                            for ri, seed in enumerate(p.seeds):
                                origin = {
                                    "datasets": (*p.loc("datasets"), di),
                                    "settings": (*p.loc("settings"), si),
                                    "backbones": (*p.loc("backbones"), bi),
                                    "learners": (*p.loc("learners"), li),
                                    "seeds": (*p.loc("seeds"), ri),
                                }
                                cell = Cell(
                                    suite_name, d, s, b, lc.learner, lc.train, lc.test, seed,
                                    origin=origin,
                                )  # fmt: skip
                                yield cell, (pi, di, si, bi, li, ci, ri)


def duplicates(cells: Sequence[Indexed], blocks: list[Block]) -> list[tuple[Loc, str]]:
    """Problems for cells whose full configuration repeats an earlier cell."""
    first: dict[str, tuple[int, ...]] = {}
    out: dict[Loc, str] = {}
    for cell, idx in cells:
        prev = first.setdefault(cell.id, idx)
        if prev == idx:
            continue
        pos = next(i for i in range(7) if prev[i] != idx[i])
        part, learner_cells_ = blocks[idx[0]]
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
            a = learner_cells_[idx[4]][prev[5]].choice
            b = learner_cells_[idx[4]][idx[5]].choice
            k = next(k for k in sorted(b) if a[k] != b[k])
            base = (*part.loc("learners"), idx[4], k)
            loc, other = (*base, b[k]), format_loc((*base, a[k]))
        out.setdefault(loc, f"duplicate cell: same configuration as {other} ({cell.label()})")
    return list(out.items())


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
