"""Whether a suite's cells can run on their datasets and backbones, known without loading data.

A dataset declares the most it can supply (classes per split, images per class, image shape:
:func:`memcomp.data.dataset_supply`) and a backbone the smallest images it accepts
(:func:`memcomp.backbones.backbone_input_problem`); both are torch-free. ``memcomp validate`` and
the run's preflight report every cell that asks for more, at the setting or backbone that asks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from memcomp.config.cells import Cell
from memcomp.config.problems import Loc, Problem, sorted_unique

if TYPE_CHECKING:
    from memcomp.config.suite import Suite


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=repr)


def _supply(name: str, params: dict[str, Any]) -> tuple[Any, str | None]:
    from memcomp.data import dataset_supply

    try:
        return dataset_supply(name, params), None
    except Exception as e:  # noqa: BLE001 - a plugin's declaration may fail: say so, do not crash
        return None, f"dataset {name!r} cannot say what it supplies: {e}"


def infeasible(cells: Iterable[Cell]) -> list[tuple[Cell, Loc, str]]:
    """``(cell, field path, message)`` for every cell its dataset or backbone cannot serve.

    Each distinct dataset/setting and dataset/backbone pair is checked once; a cell shares the
    message of the first cell with the same pair (so every cell that cannot run is listed).
    """
    from memcomp.backbones import backbone_input_problem
    from memcomp.data import setting_problems

    supplies: dict[str, tuple[Any, str | None]] = {}
    found: dict[str, list[tuple[str, str]]] = {}
    out: list[tuple[Cell, Loc, str]] = []
    for cell in cells:
        d, s, b = cell.dataset, cell.setting, cell.backbone
        dkey = _key(d.name, d.params)
        if dkey not in supplies:
            supplies[dkey] = _supply(d.name, dict(d.params))
        supply, why = supplies[dkey]
        skey, bkey = _key(dkey, s.model_dump()), _key(dkey, b.name, b.params)
        if skey not in found:
            msgs = setting_problems(d.name, supply, s.ways, s.shots, s.queries)
            found[skey] = [("settings", m) for m in msgs]
            if why:
                found[skey].insert(0, ("datasets", why))
        if bkey not in found:
            found[bkey] = []
            if supply is not None and supply.channels and supply.image_size:
                shape = (supply.channels, supply.image_size, supply.image_size)
                try:
                    msg = backbone_input_problem(b.name, dict(b.params), shape)
                except Exception as e:  # noqa: BLE001 - as for datasets: report it
                    msg = f"cannot say which images it accepts: {e}"
                if msg:
                    found[bkey].append(
                        ("backbones", f"backbone {b.name!r} on {d.name!r} images {shape}: {msg}")
                    )
        for axis, msg in found[skey] + found[bkey]:
            out.append((cell, cell.where(axis), msg))
    return out


def feasibility_problems(suite: Suite, cells: Sequence[Cell] | None = None) -> list[Problem]:
    """What :func:`infeasible` finds in ``cells`` (default: all of ``suite``), as file:line
    problems of the suite, each once, in line order."""
    found = infeasible(suite.cells if cells is None else cells)
    return sorted_unique(suite.problem(loc, msg) for _, loc, msg in found)
