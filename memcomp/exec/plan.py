"""Whole-suite checks before any work: everything that would fail later, reported at once.

After :func:`memcomp.config.load_suite` (schema, names, value ranges), :func:`preflight` checks the
run options, the device, what datasets and backbones declare without loading
(:mod:`memcomp.config.feasible`), that every dataset loads and can supply every setting, that
every backbone accepts the dataset's images, and that the output folder is writable (or, with
``--resume``, belongs to this suite). Learner parameters are not checked here: every cell holds
its learner's validated parameter model since the suite was loaded (the learner's own field and
model validators ran once, per expanded combination), and the engine hands it to the learner.
All problems are raised together as one :class:`~memcomp.config.SuiteError` (exit 2); nothing
is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memcomp.config import Problem, Suite, SuiteError
from memcomp.config.cells import Cell
from memcomp.config.feasible import infeasible
from memcomp.config.size import host_memory_bytes, size_problems
from memcomp.engine import DataCache, one_line
from memcomp.fsutil import dangling_link_problem
from memcomp.measure.device import check_device
from memcomp.results.resume import find_resume_dir, resume_problem

CLI = "command line"


@dataclass
class Plan:
    """What preflight established: the device and, when resuming, the folder to resume."""

    device: torch.device
    resume_dir: Path | None = None


class _Problems:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.items: list[Problem] = []

    def at(self, loc: tuple[str | int, ...], message: str) -> None:
        self.items.append(self.suite.problem(loc, message))

    def cli(self, option: str, message: str) -> None:
        self.items.append(Problem(CLI, None, option, message))


def _one_line(e: BaseException) -> str:
    # input problems are shown whole: their messages say what to do
    return one_line(e, limit=2000)


def check_output(out: Path, suite_name: str) -> str | None:
    """Why results cannot be created under ``out/<suite>`` (None when they can)."""
    target = out / suite_name
    link = dangling_link_problem(target)
    if link:
        return link
    try:
        if not target.resolve().is_relative_to(out.resolve()):
            return f"suite name {suite_name!r} would write outside {out}"
    except (OSError, RuntimeError) as e:
        return f"cannot resolve {target}: {_one_line(e)}"
    for p in (target, out):
        if p.exists() and not p.is_dir():
            return f"{p} exists and is not a folder"
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (results go to {target})"
    return None


def _key(*parts: Any) -> str:
    return json.dumps(
        [p.model_dump() if hasattr(p, "model_dump") else p for p in parts], default=repr
    )


def check_cells(
    suite: Suite, cells: Sequence[Cell], problems: _Problems, datasets: DataCache
) -> None:
    """Datasets load (into ``datasets``) and fit every setting; backbones accept the images."""
    from memcomp.backbones import build_backbone

    loaded: dict[str, Any] = {}
    failed: set[str] = set()
    checked: set[str] = set()
    for cell in cells:
        d = cell.dataset
        dkey = _key(d.name, d.params)
        if dkey in failed:
            continue
        if dkey not in loaded:
            try:
                loaded[dkey] = datasets.get(d.name, d.params)
            except Exception as e:  # noqa: BLE001 - any loader failure is a preflight problem
                failed.add(dkey)
                problems.at(
                    cell.where("datasets"),
                    f"dataset {d.name!r} cannot be loaded: {_one_line(e)}",
                )
                continue
        data = loaded[dkey]
        s = cell.setting
        key = _key("setting", d.name, d.params, s)
        if key not in checked:
            checked.add(key)
            try:
                data.check_setting(s.ways, s.shots, s.queries)
            except Exception as e:  # noqa: BLE001
                problems.at(cell.where("settings"), _one_line(e))
                continue
        b = cell.backbone
        bkey = _key("backbone", d.name, d.params, b.name, b.params)
        if bkey in checked or bkey in failed:
            continue
        checked.add(bkey)
        shape = tuple(data.split("train").image_shape)
        try:
            backbone = build_backbone(b.name, dict(b.params), shape)
            with torch.no_grad():
                backbone.eval()
                backbone(torch.zeros(2, *shape))
        except Exception as e:  # noqa: BLE001
            failed.add(bkey)
            problems.at(
                cell.where("backbones"),
                f"backbone {b.label()} cannot process {d.name} images of shape "
                f"{shape}: {_one_line(e)}",
            )


def check_sizes(cells: Sequence[Cell], problems: _Problems, dev: torch.device | None) -> None:
    """Cells that could not finish, or whose images alone exceed the memory of this machine and
    ``dev`` (None: the work only), reported at the learner."""
    host = gpu = None
    if dev is not None:
        host = host_memory_bytes()
        if dev.type == "cuda":
            gpu = float(torch.cuda.get_device_properties(dev).total_memory)
    found = size_problems(cells, host, gpu, f"the GPU {dev}")
    for cell, msg in found:
        problems.at(cell.where("learners"), msg)


def preflight(
    suite: Suite,
    cells: Sequence[Cell],
    *,
    device: str | None = None,
    out: Path | None = None,
    resume: Path | None = None,
    jobs: int = 1,
    isolation: str = "process",
    memory_limit_mb: float | None = None,
    check_data: bool = True,
    datasets: DataCache | None = None,
    size_check: bool = True,
    size_memory: bool = True,
) -> Plan:
    """Check everything a run needs; raise :class:`SuiteError` listing every problem.

    Datasets are loaded into ``datasets`` (the caller's cache: an inline run reuses them).
    ``size_check``: refuse cells whose estimated work or memory (:mod:`memcomp.config.size`)
    cannot finish or fit on this machine and device (``size_memory=False``: the work only).
    """
    p = _Problems(suite)
    isolation = str(getattr(isolation, "value", isolation))
    if jobs < 1:
        p.cli("--jobs", f"must be >= 1 (got {jobs})")
    if isolation not in ("process", "inline"):
        p.cli("--isolation", f"must be one of process, inline (got {isolation!r})")
    elif isolation == "inline" and jobs > 1:
        p.cli("--jobs", f"must be 1 with --isolation inline (got {jobs}); use process isolation")
    if memory_limit_mb is not None and not (memory_limit_mb > 0 and memory_limit_mb < float("inf")):
        p.cli("--memory-limit", f"must be a number of MB > 0 (got {memory_limit_mb})")
    dev, why = check_device(device or suite.device)
    if why:
        if device:
            p.cli("--device", why)
        else:
            p.at(("device",), why)
    elif dev is not None and dev.type == "cuda" and memory_limit_mb:
        total = torch.cuda.get_device_properties(dev).total_memory / 2**20
        if memory_limit_mb > total:
            p.cli("--memory-limit", f"must be <= {total:.0f} MB, the GPU's memory")
    resume_dir = None
    if resume is not None:
        resume_dir = find_resume_dir(resume)
        why = resume_problem(resume_dir, suite.name)
        if why is None and not os.access(resume_dir, os.W_OK | os.X_OK):
            why = f"{resume_dir} is not writable"
        if why:
            p.cli("--resume", why)
    elif out is not None:
        why = check_output(out, suite.name)
        if why:
            p.cli("--out", why)
    if size_check and dev is not None:
        check_sizes(cells, p, dev if size_memory else None)
    # what the datasets and backbones declare, without loading: those cells are not loaded
    found = infeasible(cells)
    p.items.extend(suite.problem(loc, msg) for _, loc, msg in found)
    if check_data:
        skip = {c.id for c, _, _ in found}
        rest = [c for c in cells if c.id not in skip]
        check_cells(suite, rest, p, datasets if datasets is not None else DataCache())
    if p.items:
        unique = list(dict.fromkeys(p.items))
        in_suite = sorted((x for x in unique if x.file != CLI), key=lambda x: x.line or 0)
        raise SuiteError(in_suite + [x for x in unique if x.file == CLI])
    assert dev is not None
    return Plan(dev, resume_dir)
