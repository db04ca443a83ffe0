"""The Python API runs a suite as ``memcomp run`` does (issue 19): Ctrl-C and a full disk keep
every finished row and say how to resume, one progress-event type whatever runs the cells, one
dead-child error row."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and the fake learners
import pytest
import torch
import yaml
from helpers_suite import fake_tiny_suite

import memcomp
import memcomp.engine.train as train
import memcomp.exec.api as api
from memcomp.exec.processes import ChildCell, _child_outcome
from memcomp.exec.progress import ProgressEvent
from memcomp.exec.remote import outcome_from_result
from memcomp.results.store import ResultsDir

STEPS = 3 + 6  # meta-steps of one fake cell: memory measurement (1 warm-up + 2), 6 iterations


def suite_file(tmp_path: Path, seeds: int = 3) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(fake_tiny_suite([{"name": "fake-ok"}], name="api",
                                                   seeds=range(seeds))))  # fmt: skip
    return path


def folder_of(out: Path) -> Path:
    (folder,) = [p.parent for p in out.glob("*/*/manifest.json")]
    return folder


def test_ctrl_c_keeps_the_rows_and_gives_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    suite, calls, real = suite_file(tmp_path), {"n": 0}, train.meta_step

    def step(*a: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == STEPS + 4:  # in the second cell
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(train, "meta_step", step)
    with pytest.raises(memcomp.Interrupted) as info:
        memcomp.run_suite(suite, tmp_path / "out", isolation="inline", jobs=1)
    stop, folder = info.value, folder_of(tmp_path / "out")
    assert isinstance(stop, KeyboardInterrupt)  # a caller that does not ask still sees Ctrl-C
    assert [o.row["seed"] for o in stop.outcomes] == [0] and len(stop.unfinished) == 2
    assert list(ResultsDir(folder).runs()["seed"]) == [0]
    assert stop.folder == folder
    assert stop.resume == f"memcomp run {suite} --resume {folder} --isolation=inline"
    assert str(stop) == (f"interrupted: 1 of 3 cells are saved in {folder}; 2 not finished.\n"
                         f"resume with: {stop.resume}")  # fmt: skip
    monkeypatch.setattr(train, "meta_step", real)
    folder2, outcomes = memcomp.run_suite(suite, resume=folder, isolation="inline")
    assert folder2 == folder and [o.row["seed"] for o in outcomes] == [1, 2]


def test_a_full_disk_keeps_the_rows_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    suite = suite_file(tmp_path)
    real, writes = ResultsDir.append, {"n": 0}

    def append(self: ResultsDir, *a: Any, **kw: Any) -> Any:
        writes["n"] += 1
        if writes["n"] == 2:
            (self.path / ".runs.csv.tmp").write_text("half")  # a write the disk cut short
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(ResultsDir, "append", append)
    with pytest.raises(memcomp.DiskFull) as info:
        memcomp.run_suite(suite, tmp_path / "out", isolation="inline")
    stop, folder = info.value, folder_of(tmp_path / "out")
    assert stop.exit_code == 1 and [o.row["seed"] for o in stop.outcomes] == [0]
    text = str(stop)
    assert text.startswith(f"no space left on device at {folder} (OSError: [Errno 28] No space")
    assert "; 1 of 3 cells are saved in" in text and "2 not finished" in text
    assert text.endswith(f"free some space, then resume with: {stop.resume}")
    assert stop.resume == f"memcomp run {suite} --resume {folder} --isolation=inline"
    assert list(ResultsDir(folder).runs()["seed"]) == [0]
    assert not list(folder.glob(".*.tmp"))  # no half-written file left
    json.loads((folder / "manifest.json").read_text())
    monkeypatch.setattr(ResultsDir, "append", real)
    _, outcomes = memcomp.run_suite(suite, resume=folder, isolation="inline")
    assert [o.row["seed"] for o in outcomes] == [1, 2]


def test_a_full_disk_before_the_first_write_says_nothing_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*a: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api, "create_results_dir", full)
    with pytest.raises(memcomp.DiskFull, match="nothing was written") as info:
        memcomp.run_suite(suite_file(tmp_path), tmp_path / "out", isolation="inline")
    assert str(info.value).startswith(f"no space left on device at {tmp_path / 'out'} (OSError")
    assert not (tmp_path / "out").exists()


def test_one_event_type_whatever_runs_the_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCOMP_PLUGINS", "fake_learners")  # the cell child imports it too
    suite = suite_file(tmp_path, seeds=1)
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for isolation in ("inline", "process"):
        events: list[ProgressEvent] = []
        _, (outcome,) = memcomp.run_suite(suite, tmp_path / isolation, events.append,
                                          isolation=isolation, threads=1)  # fmt: skip
        assert outcome.row["status"] == "ok", outcome.row.get("error")
        assert all(isinstance(e, ProgressEvent) for e in events)
        seen[isolation] = [(e.kind, e.cell.id, e.iterations, e.iteration) for e in events]
    assert seen["inline"] == seen["process"]
    kinds = [k for k, *_ in seen["inline"]]
    assert kinds[0] == "started" and kinds[-1] == "done" and "iteration" in kinds


def test_a_dead_child_is_the_same_row_locally_and_remotely(tmp_path: Path) -> None:
    cell = memcomp.expand(memcomp.load_suite(suite_file(tmp_path, seeds=1)))[0]
    log = "loading\nFatal Python error: Segmentation fault\n"
    child = ChildCell(0, cell, None)  # type: ignore[arg-type]
    child.stderr.extend(log.encode())
    local = _child_outcome(child, -11, torch.device("cpu")).row
    result = {"row": None, "log": log, "exit": "killed by signal SIGSEGV", "exit_code": -11}
    remote = outcome_from_result(cell, result, torch.device("cpu")).row
    keys = ("status", "error", "exit_code", "cell_id")
    assert [local[k] for k in keys] == [remote[k] for k in keys]
    assert local["error"] == (
        "cell process killed by signal SIGSEGV: Fatal Python error: Segmentation fault"
    )
