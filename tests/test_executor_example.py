"""Adding an executor is one file: this one. ``serial-reverse`` runs cells in reverse order in this
process; registered here, ``memcomp run --executor serial-reverse`` (or ``executor: {kind:
serial-reverse}`` in the suite) uses it, ``validate``, ``list`` and the JSON Schema know it, its
options are a suite section, and its progress and resume work like any executor's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import fake_learners  # noqa: F401 - registers fake-tiny and the fake learners
import yaml
from helpers_suite import fake_tiny_suite
from pydantic import Field
from typer.testing import CliRunner

import memcomp
from memcomp.cli import app
from memcomp.config.cells import Cell
from memcomp.engine import run_cell
from memcomp.exec.executor import EXECUTORS, Executor, RunContext
from memcomp.exec.progress import CellProgress, ProgressEvent
from memcomp.registry import Params
from memcomp.results.store import ResultsDir


class ReverseOptions(Params):
    """Options of ``serial-reverse`` (a section of the suite's ``executor:``)."""

    note: str = Field("reversed", description="written into each row's executor column")


@EXECUTORS.register("serial-reverse", "test: cells in reverse order, in this process",
                    ReverseOptions)  # fmt: skip
class SerialReverse(Executor):
    """Every cell in this process, last first."""

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        assert self.options.executor_options is not None
        note = self.options.executor_options.section("serial-reverse").note
        for i in reversed(range(len(cells))):
            outcome = run_cell(cells[i], ctx.device, CellProgress(ctx.emit, cells[i]))
            outcome.row["executor"] = f"serial-reverse({note})"
            ctx.record(i, outcome)


runner = CliRunner()


def suite_file(tmp_path: Path, **over: object) -> Path:
    path = tmp_path / "s.yaml"
    data = fake_tiny_suite([{"name": "fake-ok"}], name="reverse", seeds=(0, 1, 2), **over)
    path.write_text(yaml.safe_dump(data))
    return path


def folder_of(out: Path) -> Path:
    (folder,) = [p.parent for p in out.glob("*/*/manifest.json")]
    return folder


def test_memcomp_run_uses_the_registered_executor(tmp_path: Path) -> None:
    suite = suite_file(tmp_path)
    res = runner.invoke(app, ["run", str(suite), "--executor", "serial-reverse", "--out",
                              str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 0, res.output
    folder = folder_of(tmp_path / "out")
    runs = ResultsDir(folder).runs()
    assert list(runs["seed"]) == [2, 1, 0]  # written as it ran them: last cell first
    assert set(runs["executor"]) == {"serial-reverse(reversed)"} and set(runs["status"]) == {"ok"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["options"]["executor"] == "serial-reverse"
    assert manifest["execution"]["executor"]["kind"] == "serial-reverse"


def test_the_suite_section_validates_and_configures_it(tmp_path: Path) -> None:
    bad = suite_file(tmp_path, executor={"kind": "serial-reverse", "serial-reverse": {"nte": 1}})
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2 and "executor.serial-reverse.nte: unknown key" in res.output
    section = {"kind": "serial-reverse", "serial-reverse": {"note": "from the suite"}}
    suite = suite_file(tmp_path, executor=section)
    assert runner.invoke(app, ["validate", str(suite)]).exit_code == 0
    events: list[ProgressEvent] = []
    folder, outcomes = memcomp.run_suite(suite, tmp_path / "out", events.append)
    assert [o.row["executor"] for o in outcomes] == ["serial-reverse(from the suite)"] * 3
    done = [e.cell.seed for e in events if e.kind == "done"]
    started = [e.cell.seed for e in events if e.kind == "started"]
    assert done == started == [2, 1, 0]
    assert {e.kind for e in events} == {"started", "iteration", "done"}
    listed = runner.invoke(app, ["list", "executors"])
    assert "serial-reverse" in listed.output
    assert EXECUTORS.get("serial-reverse").source == "module test_executor_example"
    schema = json.loads(runner.invoke(app, ["schema"]).output)
    assert "serial-reverse" in json.dumps(schema)


def test_resume_and_interrupt_work_through_it(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    import memcomp.engine.train as train

    suite = suite_file(tmp_path)
    calls = {"n": 0}
    real = train.meta_step

    def step(*a: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3 + 6 + 2:  # cell 1 (memory 3 + 6 steps) saved; Ctrl-C in cell 2
            raise KeyboardInterrupt
        return real(*a)

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setattr(train, "meta_step", step)
    with pytest.raises(memcomp.Interrupted) as stop:
        memcomp.run_suite(suite, tmp_path / "out", executor="serial-reverse")
    folder = folder_of(tmp_path / "out")
    assert list(ResultsDir(folder).runs()["seed"]) == [2] and len(stop.value.outcomes) == 1
    assert stop.value.resume == (f"memcomp run {suite} --resume {folder} --executor=serial-reverse")
    mp.setattr(train, "meta_step", real)
    _, outcomes = memcomp.run_suite(suite, resume=folder, executor="serial-reverse")
    assert [o.row["seed"] for o in outcomes] == [0, 1]  # outcomes come back in cell order
    assert list(ResultsDir(folder).runs()["seed"]) == [2, 1, 0]  # written last cell first
