"""``memcomp plan``: per cell, the predicted peak memory and the execution ``run`` would choose.

The same code path as ``memcomp run``'s ``execution: auto`` (:func:`memcomp.engine.choose.choose`
on the meta-device predictions of :mod:`memcomp.engine.predict`); nothing is trained and no GPU
is needed: ``--device cuda --gpu-memory 40GB`` plans for a card of that size.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from memcomp.cli.app import app, console, handle_errors
from memcomp.cli.common import TextTable, esc, short_label, styled
from memcomp.cli.options import DeviceChoice
from memcomp.errors import InputError

MB = 2**20
_UNITS = {"": MB, "b": 1, "k": 2**10, "m": MB, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
SIZE_HINT = "use e.g. 40GB, 40960MB or 0.5TB (binary units: 1 GB = 1024 MB; a bare number is MB)"


def parse_size(text: str) -> int:
    """Bytes of ``40GB`` / ``40 GiB`` / ``40960MB`` / ``512m`` / ``2000`` (MB); units are binary
    (GB = GiB = 2**30 bytes, as memcomp's MB = 2**20). An :class:`InputError` otherwise."""
    m = _SIZE.match(text)
    if m is None or (m.group(2) == "" and m.group(3) and m.group(3).lower() == "ib"):
        raise InputError(f"--gpu-memory: {text!r} is not a size; {SIZE_HINT}")
    unit = m.group(2).lower()
    scale = _UNITS[unit] if (unit or not m.group(3)) else 1  # "512B" is bytes
    value = float(m.group(1)) * scale
    if value <= 0:
        raise InputError(f"--gpu-memory: {text!r} must be more than 0; {SIZE_HINT}")
    return int(value)


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes (None where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def image_shape(cell: Any, datasets: Any) -> tuple[int, int, int]:
    """The cell's image shape from its dataset's declared supply, else by loading it."""
    from memcomp.data import dataset_supply

    supply = dataset_supply(cell.dataset.name, dict(cell.dataset.params))
    if supply is not None and supply.channels and supply.image_size:
        return (int(supply.channels), int(supply.image_size), int(supply.image_size))
    try:
        shape = datasets.for_cell(cell).split("train").image_shape
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - one line naming the dataset
        raise InputError(
            f"dataset {cell.dataset.name!r}: its image shape is not declared and loading it "
            f"failed ({type(e).__name__}: {e})"
        ) from None
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def plan_rows(cells: list[Any], device_type: str, budget: Any) -> list[dict[str, Any]]:
    """One row per cell: the choice, its prediction and whether it fits ``budget``."""
    from memcomp.engine import DataCache
    from memcomp.engine.choose import choose

    datasets = DataCache()
    rows = []
    for cell in cells:
        shape = image_shape(cell, datasets)
        got = choose(cell, shape, device_type, budget, predict=True)
        ex, pred, b = got.execution, got.prediction, cell.train.meta_batch
        held = None if pred is None else pred.held_mb
        fits = got.fits
        if device_type != "cuda" and held is not None and budget is not None:
            fits = held <= budget.mb  # a CPU needs what it holds: no CUDA margins
        rows.append({
            "cell_id": cell.id, "learner": short_label("learner", cell.learner),
            "dataset": cell.dataset.name, "image_shape": "x".join(map(str, shape)),
            "setting": f"{cell.setting.ways}w{cell.setting.shots}s{cell.setting.queries}q",
            "backbone": short_label("backbone", cell.backbone), "seed": cell.seed,
            "meta_batch": b, "execution": ex.mode, "task_chunk": ex.chunk_used(b),
            "predicted_peak_mb": None if pred is None else round(pred.peak_mb, 3),
            "predicted_baseline_mb": None if pred is None else round(pred.baseline_mb, 3),
            "held_mb": None if held is None else round(held, 3),
            "need_mb": None if got.need_mb is None or device_type != "cuda"
            else round(got.need_mb, 3),
            "budget_mb": None if budget is None else round(budget.mb, 3),
            "fits": fits, "predicted_on": None if pred is None else pred.how,
            "reason": ex.reason,
        })  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]], title: str, device_type: str) -> Table:
    table = TextTable(title=title)
    table.add_column("#", justify="right")
    table.add_column("cell id", no_wrap=True)
    table.add_column("learner", overflow="fold")
    table.add_column("setting", overflow="fold")
    table.add_column("execution", no_wrap=True)
    table.add_column("peak MB", justify="right", no_wrap=True)
    need = "need MB" if device_type == "cuda" else "held MB"
    table.add_column(need, justify="right", no_wrap=True)
    table.add_column("fits", no_wrap=True)

    def num(v: Any) -> str:
        return "?" if v is None else f"{v:.1f}"

    for i, r in enumerate(rows, 1):
        fits = {True: styled("yes", "green"), False: styled("no", "red"), None: "?"}[r["fits"]]
        how = "sequential" if r["execution"] == "sequential" else (
            f"batched {r['task_chunk']}/{r['meta_batch']}")  # fmt: skip
        table.add_row(
            str(i), r["cell_id"], r["learner"],
            f"{r['dataset']} {r['image_shape']} {r['setting']}", how,
            num(r["predicted_peak_mb"]), num(r["need_mb" if device_type == "cuda" else "held_mb"]),
            fits,
        )  # fmt: skip
    return table


@app.command()
@handle_errors
def plan(
    suite: Path = typer.Argument(..., help="Suite YAML file."),
    device: DeviceChoice = typer.Option(
        None, "--device", help="Plan for this device (default: the suite's `device`)."
    ),
    gpu_memory: str = typer.Option(
        None,
        "--gpu-memory",
        metavar="SIZE",
        help="cuda: plan for a GPU with this much memory free, e.g. 40GB (default: the free "
        "memory of this machine's GPU).",
    ),
    only: str = typer.Option(None, "--only", help="Plan only cells matching this glob."),
    csv_file: Path = typer.Option(None, "--csv", help="Also write the plan as CSV to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON, not a table."),
) -> None:
    """Predicted peak memory and the execution `run` would choose, per cell, without training.

    Each cell's learner runs one meta-iteration on torch's meta device (shapes only, nothing
    computed) under memcomp's CPU memory estimate; `execution: auto` then chooses as `run`
    does: on cuda the largest task chunk whose need (1.10 x held + 256 MB) fits, on cpu the
    learner's measured rule. Exit 1 if some cell does not fit, 2 on bad input.

    Examples:

      memcomp plan suites/paper-accuracy.yaml --device cuda --gpu-memory 40GB

      memcomp plan suites/paper-memory.yaml --device cuda --gpu-memory 24GB --csv plan.csv

      memcomp plan suites/quickstart.yaml --device cpu

      memcomp plan suites/paper-wallclock.yaml --device cuda --json
    """
    from memcomp.config import expand, load_suite
    from memcomp.config.expand import filter_cells
    from memcomp.measure.budget import MemoryBudget, cuda_budget
    from memcomp.measure.device import check_device

    size = None if gpu_memory is None else parse_size(gpu_memory)
    s = load_suite(suite)
    cells = filter_cells(expand(s), only) if only else expand(s)
    if not cells:
        raise InputError(f"--only {only!r} matches no cell of {suite}")
    name = device.value if device else s.device
    import torch

    if name == "auto":
        name = "cuda" if (torch.cuda.is_available() or size is not None) else "cpu"
    device_type = "cuda" if name.startswith("cuda") else "cpu"
    if device_type == "cpu":
        if size is not None:
            raise InputError("--gpu-memory applies to --device cuda (a CPU plan uses this "
                             "machine's memory)")  # fmt: skip
        ram = machine_memory()
        budget = None if ram is None else MemoryBudget(ram, f"this machine's {ram / MB:.0f} MB")
    elif size is not None:
        budget = MemoryBudget(size, f"--gpu-memory {gpu_memory}")
    else:
        dev, why = check_device(name)
        if dev is None:
            raise InputError(f"--device {name}: {why}; or plan for a GPU of a given size with "
                             "--gpu-memory SIZE (e.g. 40GB)")  # fmt: skip
        budget = cuda_budget(dev)
    rows = plan_rows(cells, device_type, budget)
    if csv_file is not None:
        _write_csv(csv_file, rows)
    if as_json:
        typer.echo(json.dumps({"suite": s.name, "device": device_type,
                               "budget_mb": None if budget is None else budget.mb,
                               "budget": None if budget is None else budget.source,
                               "cells": rows}, indent=2))  # fmt: skip
    else:
        where = "?" if budget is None else budget.source
        title = f"suite {s.name}: {len(rows)} cells on {device_type}, budget {where}"
        console.print(_table(rows, title, device_type))
        console.print("peak: predicted peak_mem_mb (CPU estimate, above the baseline); "
                      + ("need: 1.10 x held + 256 MB, compared with the budget"
                         if device_type == "cuda" else "held: baseline + peak + weights"),
                      highlight=False)  # fmt: skip
        for r in rows:
            if r["fits"] is False:
                console.print(f"[red]does not fit[/]: {esc(r['cell_id'])} {esc(r['learner'])}: "
                              f"{esc(r['reason'])}", highlight=False)  # fmt: skip
        if csv_file is not None:
            console.print(f"plan written to {esc(csv_file)}", highlight=False)
    raise typer.Exit(1 if any(r["fits"] is False for r in rows) else 0)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import io

    from memcomp.fsutil import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    try:
        atomic_write_text(path, buf.getvalue())
    except OSError as e:
        raise InputError(f"--csv {path}: cannot write ({e.strerror or e})") from None
