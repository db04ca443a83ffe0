"""Continuing a results folder: which folder, whether it may be resumed, what is already done."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcomp.results.store import CorruptResultsError, ResultsDir, TornTailError

if TYPE_CHECKING:
    from memcomp.config.cells import Cell


def find_resume_dir(path: Path) -> Path:
    """``path`` itself when it holds a manifest, else its newest run subfolder that does."""
    if (path / "manifest.json").exists() or not path.is_dir():
        return path
    runs = sorted(p.parent for p in path.glob("*/manifest.json") if not p.parent.name[0] == ".")
    return runs[-1] if runs else path


def resume_problem(path: Path, suite_name: str) -> str | None:
    """Why ``path`` cannot be resumed for suite ``suite_name`` (None when it can)."""
    if not path.exists():
        return f"{path} does not exist (pass a folder written by `memcomp run`)"
    if not path.is_dir():
        return f"{path} is not a folder"
    rd = ResultsDir(path)
    if not rd.manifest_json.exists():
        return f"{path} has no manifest.json: not a memcomp results folder; refusing to write there"
    try:
        found = rd.manifest().get("suite")
    except (OSError, CorruptResultsError) as e:
        return f"{e}; refusing to write there"
    if found != suite_name:
        return (
            f"{path} holds results of suite {found!r}, not {suite_name!r}; "
            "it is never overwritten: resume a folder of this suite or omit --resume"
        )
    try:
        rd.raw_runs()
    except TornTailError:
        pass  # an interrupted append: opening the folder cuts the torn line off (repair_torn_tails)
    except CorruptResultsError as e:
        return str(e)
    return None


def completed_ids(results: ResultsDir) -> set[str]:
    """Cell ids with a row of status ``ok`` in ``results`` (a torn last row is not one)."""
    runs = results.raw_runs(torn_ok=True)
    if not len(runs) or "status" not in runs.columns:
        return set()
    return set(runs.loc[runs["status"] == "ok", "cell_id"].astype(str))


def stale_ids(results: ResultsDir, cells: Sequence[Cell]) -> list[str]:
    """Cell ids with rows in ``results`` that are not cells of the current suite."""
    runs = results.raw_runs(torn_ok=True)
    if not len(runs):
        return []
    current = {c.id for c in cells}
    return sorted(set(runs["cell_id"].astype(str)) - current)


def clean_temp_files(results: ResultsDir) -> None:
    """Remove temporary files left by a write that a kill interrupted."""
    for sub in (results.path, results.path / "checkpoints"):
        for tmp in sub.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def version_note(results: ResultsDir, new: dict[str, Any]) -> str | None:
    """A note when the folder was written by another memcomp version or results schema."""
    old = results.manifest()
    notes = []
    if old.get("memcomp_version") and old["memcomp_version"] != new["memcomp_version"]:
        notes.append(
            f"written by memcomp {old['memcomp_version']}, resuming with {new['memcomp_version']}"
        )
    if old.get("results_schema", 1) != new.get("results_schema", 1):
        notes.append(
            f"results schema {old.get('results_schema', 1)} -> {new.get('results_schema')}: "
            "old rows are read through the schema mapping"
        )
    return f"{results.path} was " + "; ".join(notes) if notes else None


def resume_manifest(
    results: ResultsDir, new: dict[str, Any], cells: Sequence[Cell]
) -> dict[str, Any]:
    """The folder's manifest with this session recorded and the current cells added."""
    old = results.manifest()
    sessions = list(old.get("resumes", []))
    session = {
        "resumed_at": new["started_at"],
        "memcomp_version": new["memcomp_version"],
        "results_schema": new.get("results_schema"),
        "torch_version": new["torch_version"],
        "device": new["device"],
        "device_name": new["device_name"],
        "git_commit": new["git_commit"],
        "options": new["options"],
        "suite_sha256": hashlib.sha256(new["suite_text"].encode()).hexdigest(),
    }
    note = version_note(results, new)
    if note:
        session["version_note"] = note
    sessions.append(session)
    return {
        **old,
        "resumes": sessions,
        "suite_text": new["suite_text"] or old.get("suite_text", ""),
        "cells": {**old.get("cells", {}), **{c.id: c.config() for c in cells}},
        "precision": {**old.get("precision", {}), **new.get("precision", {})},
    }


def recorded_options(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run options the folder's latest session recorded (the last resume, else the run)."""
    sessions = manifest.get("resumes") or []
    if sessions and isinstance(sessions[-1], dict) and "options" in sessions[-1]:
        return dict(sessions[-1]["options"] or {})
    return dict(manifest.get("options") or {})


def resume_command(suite_path: Path | str, folder: Path | str, recorded: dict[str, Any]) -> str:
    """The shell command that resumes ``folder`` with the options a session recorded (the
    manifest's ``options``): every option that changed how it ran, shell-quoted."""
    import shlex

    from memcomp.config.run_options import RunOptions

    options = RunOptions.model_validate(recorded)
    args = ["memcomp", "run", str(suite_path), "--resume", str(folder), *options.argv()]
    return shlex.join(args)
