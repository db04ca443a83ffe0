"""``memcomp merge A B ... --out C``: results folders of one suite, run on different machines,
become one folder.

Every cell keeps one row: when a cell ran in several folders, a finished (``ok``) row wins over any
other status, and among equals the one that finished last; each such choice is reported. Curves,
episodes and logs follow the chosen row's folder. The manifest is the first folder's with the cells
of all of them and ``merged_from`` describing each source. Folders of different suites are refused.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from memcomp.errors import InputError
from memcomp.fsutil import dangling_link_problem
from memcomp.results.schema import CURVE_COLUMNS, EPISODE_COLUMNS, RUN_COLUMNS
from memcomp.results.store import ResultsDir, atomic_write_csv


@dataclass
class MergeReport:
    """What a merge did: rows kept, and one line per cell that ran more than once."""

    out: Path
    cells: int
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _source(path: Path) -> ResultsDir:
    rd = ResultsDir(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder (pass results folders written by `memcomp run`)")
    if not rd.manifest_json.exists():
        raise InputError(f"{path}: no manifest.json, not a memcomp results folder")
    try:
        rd.manifest()
    except ValueError as e:
        raise InputError(f"{rd.manifest_json}: unreadable ({e})") from None
    rd.check_ends()  # a torn curves/episodes tail is refused even when no row of it is kept
    return rd


def _rank(row: pd.Series) -> tuple[bool, str]:
    return (row.get("status") == "ok", str(row.get("finished_at") or ""))


def merge_results(sources: Sequence[Path], out: Path) -> MergeReport:
    """Merge ``sources`` into the new folder ``out`` (written atomically; never overwritten)."""
    if len(sources) < 2:
        raise InputError("merge: give at least two results folders")
    if len({p.resolve() for p in sources}) != len(sources):
        raise InputError("merge: a folder is given twice")
    folders = [_source(Path(p)) for p in sources]
    link = dangling_link_problem(out, new=True)
    if link:
        raise InputError(f"--out {out}: {link}")
    if out.exists():
        raise InputError(f"--out {out}: exists; merge writes a new folder (choose another path)")
    manifests = [f.manifest() for f in folders]
    suites = {str(m.get("suite")) for m in manifests}
    if len(suites) > 1:
        found = ", ".join(
            f"{f.path} ({m.get('suite')!r})" for f, m in zip(folders, manifests, strict=True)
        )
        raise InputError(f"merge: folders hold different suites: {found}; merge one at a time")
    report = MergeReport(out, 0)
    if len({m.get("suite_text", "") for m in manifests}) > 1:
        report.notes.append("the folders' suite files differ: cells are matched by id (config)")

    chosen: dict[str, tuple[int, pd.Series]] = {}
    for k, folder in enumerate(folders):
        runs = folder.runs()
        for _, row in runs.iterrows():
            cid = str(row["cell_id"])
            if cid in chosen:
                j, old = chosen[cid]
                keep_new = _rank(row) > _rank(old)
                line = _duplicate_line(cid, folders, (j, old), (k, row), keep_new)
                report.duplicates.append(line)
                if not keep_new:
                    continue
            chosen[cid] = (k, row)
    report.cells = len(chosen)
    _write(folders, manifests, chosen, out)
    return report


def _duplicate_line(
    cid: str,
    folders: list[ResultsDir],
    old: tuple[int, pd.Series],
    new: tuple[int, pd.Series],
    keep_new: bool,
) -> str:
    (j, a), (k, b) = old, new
    kept, dropped = (new, old) if keep_new else (old, new)
    finished = kept[1].get("status") == "ok" and dropped[1].get("status") != "ok"
    why = "the finished one" if finished else "the later one"
    return (
        f"cell {cid} ({a.get('label', '')}) ran in {folders[j].path} ({a.get('status')}) and "
        f"{folders[k].path} ({b.get('status')}): kept {why}, from {folders[kept[0]].path}"
    )


def _write(
    folders: list[ResultsDir],
    manifests: list[dict[str, Any]],
    chosen: dict[str, tuple[int, pd.Series]],
    out: Path,
) -> None:
    by_source: dict[int, set[str]] = {}
    for cid, (k, _) in chosen.items():
        by_source.setdefault(k, set()).add(cid)
    rows = pd.DataFrame([row for _, row in chosen.values()])
    cols = [c for c in RUN_COLUMNS if c in rows.columns] + [
        c for c in rows.columns if c not in RUN_COLUMNS
    ]
    tables = {"runs.csv": rows.reindex(columns=cols)}
    for name, columns, read in (  # every input is read before anything is written
        ("curves.csv", CURVE_COLUMNS, ResultsDir.curves),
        ("episodes.csv", EPISODE_COLUMNS, ResultsDir.episodes),
    ):
        parts = []
        for k, ids in sorted(by_source.items()):
            table = read(folders[k])
            if len(table):
                parts.append(table[table["cell_id"].astype(str).isin(ids)])
        tables[name] = (
            pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        )
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:  # into a temporary folder renamed at the end: a failed merge leaves no ``out``
        (tmp / "logs").mkdir(parents=True)
        for name, table in tables.items():
            atomic_write_csv(tmp / name, table)
        for k, ids in by_source.items():
            for cid in ids:
                log = folders[k].path / "logs" / f"{cid}.log"
                if log.exists():
                    shutil.copy2(log, tmp / "logs" / log.name)
        ResultsDir(tmp).write_manifest(_manifest(folders, manifests, by_source))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _manifest(
    folders: list[ResultsDir], manifests: list[dict[str, Any]], by_source: dict[int, set[str]]
) -> dict[str, Any]:
    first = manifests[0]
    cells: dict[str, Any] = {}
    precision: dict[str, Any] = {}
    resumes: list[Any] = []
    for m in manifests:
        cells.update(m.get("cells", {}))
        precision.update(m.get("precision", {}))
        resumes += m.get("resumes", [])
    keys = (
        "started_at",
        "memcomp_version",
        "torch_version",
        "device",
        "device_name",
        "platform",
        "git_commit",
        "options",
    )
    return {
        **first,
        "cells": cells,
        "precision": precision,
        "resumes": resumes,
        "merged_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "merged_from": [
            {
                "path": str(f.path),
                "rows_kept": len(by_source.get(k, ())),
                **{key: m.get(key) for key in keys},
            }
            for k, (f, m) in enumerate(zip(folders, manifests, strict=True))
        ],
    }


def report_lines(report: MergeReport) -> list[str]:
    """What to print after a merge."""
    lines = [f"merged {report.cells} cells into {report.out}"]
    lines += [f"note: {n}" for n in report.notes]
    lines += [f"duplicate: {d}" for d in report.duplicates]
    return lines
