"""A failing cell is a result, never the end of the suite: OOM, divergence, errors, crashes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and the failing learners
import pytest
import torch
from helpers_suite import fake_tiny_suite
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import expand, suite_from_dict
from memcomp.errors import InputError
from memcomp.exec.child import cell_from_json, cell_to_json, load_plugins
from memcomp.exec.processes import exit_description
from memcomp.exec.schedule import RunOptions, run_cells
from memcomp.results.manifest import new_results_dir
from memcomp.results.store import ResultsDir


def suite_dict(learners: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return fake_tiny_suite(learners, **{"name": "robust", **over})


def run(tmp_path: Path, learners: list[dict[str, Any]], **opts: Any) -> tuple[list, ResultsDir]:
    torch.set_num_threads(1)
    cells = expand(suite_from_dict(suite_dict(learners)))
    results = ResultsDir(tmp_path / "res")
    outcomes = run_cells(cells, results, torch.device("cpu"), options=RunOptions(**opts))
    return outcomes, results


def test_oom_divergence_and_error_leave_other_cells_intact(tmp_path: Path) -> None:
    learners = [
        {"name": "fake-ok"},
        {"name": "fake-oom", "fail_at": 3},
        {"name": "fake-nan", "fail_at": 5},
        {"name": "fake-error", "fail_at": 5},
        {"name": "fake-ok", "inner_lr": 0.2},  # a cell after the failures still runs
    ]
    outcomes, results = run(tmp_path, learners, isolation="inline")
    status = [o.row["status"] for o in outcomes]
    assert status == ["ok", "oom", "diverged", "error", "ok"]
    oom, div, err = (outcomes[i].row for i in (1, 2, 3))
    assert "out of memory" in oom["error"]
    # fail_at counts meta-steps of the trained learner: 5th training iteration
    assert div["diverged_at"] == 5 and "iteration 5" in div["error"]
    assert err["error"] == "ValueError: boom at meta-step 5"
    runs = results.runs().set_index("label")
    assert list(results.runs()["status"]) == status  # written, in order
    for o in (outcomes[0], outcomes[4]):
        row = runs.loc[o.row["label"]]
        assert row["status"] == "ok" and 0 <= row["test_acc"] <= 100
        assert math.isclose(row["test_acc"], o.row["test_acc"])
        assert not math.isnan(row["peak_mem_mb"])
    eps = results.episodes()
    ok_ids = {outcomes[0].row["cell_id"], outcomes[4].row["cell_id"]}
    assert set(eps["cell_id"]) == ok_ids and len(eps) == 10
    curves = results.curves()
    assert set(curves["cell_id"]) >= ok_ids
    assert (curves.groupby("cell_id").size()[list(ok_ids)] == 3).all()


def test_exploding_learning_rate_is_diverged(tmp_path: Path) -> None:
    learners = [{"name": "fake-ok", "train": {"lr": 1e30, "optimizer": "sgd"}}, {"name": "fake-ok"}]
    outcomes, _ = run(tmp_path, learners, isolation="inline")
    bad, good = (o.row for o in outcomes)
    assert bad["status"] == "diverged" and bad["diverged_at"] >= 1
    assert good["status"] == "ok"


def test_child_segfault_is_an_error_row(tmp_path: Path, monkeypatch: Any) -> None:
    """Cell children that segfault / exit early: error rows with the signal / code and a log.

    Fast: the crash comes from a plugin the child imports before torch (the real crash inside a
    training cell is the slow test below)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crash_now.py").write_text(
        "import os, signal, sys\n"
        "print('about to crash', file=sys.stderr)\n"
        "os.kill(os.getpid(), signal.SIGSEGV) if os.environ.get('HOW') != 'exit' else os._exit(5)\n"
    )
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("MEMCOMP_PLUGINS", "crash_now")
    (outcome,), results = run(tmp_path, [{"name": "fake-ok"}], isolation="process")
    row = outcome.row
    assert row["status"] == "error" and row["exit_code"] == -11
    assert row["error"].startswith("cell process killed by signal SIGSEGV")
    log = (results.path / "logs" / f"{row['cell_id']}.log").read_text()
    assert "about to crash" in log and "Segmentation fault" in log
    monkeypatch.setenv("HOW", "exit")
    (outcome,), results = run(tmp_path, [{"name": "fake-ok"}], isolation="process")
    assert outcome.row["error"] == "cell process exit code 5: about to crash"
    assert list(results.runs()["status"]) == ["error"]  # same cell id: replaced


@pytest.mark.slow
def test_process_isolation_survives_crashes(tmp_path: Path, monkeypatch: Any) -> None:
    """A segfault and an ``os._exit`` in children become error rows; others complete."""
    monkeypatch.setenv("MEMCOMP_PLUGINS", "fake_learners")
    learners = [
        {"name": "fake-crash", "fail_at": 2, "how": "segv"},
        {"name": "fake-ok"},
        {"name": "fake-crash", "fail_at": 2, "how": "exit"},
    ]
    outcomes, results = run(tmp_path, learners, isolation="process", jobs=2)
    segv, ok, exit7 = (o.row for o in outcomes)
    assert ok["status"] == "ok" and ok["test_acc"] is not None
    assert segv["status"] == "error" and "SIGSEGV" in segv["error"]
    assert exit7["status"] == "error" and "exit code 7" in exit7["error"]
    assert exit7["exit_code"] == 7
    log = (results.path / "logs" / f"{segv['cell_id']}.log").read_text()
    assert "Segmentation fault" in log  # faulthandler's traceback is kept
    runs = results.runs()
    assert sorted(runs["status"]) == ["error", "error", "ok"]
    inline, _ = run(tmp_path / "inline", [{"name": "fake-ok"}], isolation="inline")
    assert ok["test_acc"] == pytest.approx(inline[0].row["test_acc"], abs=1e-9)


def test_cli_exit_code_1_after_writing_everything(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite_dict([{"name": "fake-ok"}, {"name": "fake-error"}])))
    res = CliRunner().invoke(
        app, ["run", str(path), "--out", str(tmp_path / "out"), "--isolation", "inline"]
    )
    assert res.exit_code == 1, res.output
    (runs_csv,) = (tmp_path / "out" / "robust").glob("*/runs.csv")
    assert "--resume" in res.output
    text = runs_csv.read_text()
    assert ",ok," in text and ",error," in text


def test_cell_json_round_trip_keeps_id() -> None:
    (cell,) = expand(suite_from_dict(suite_dict([{"name": "fake-ok", "inner_lr": 0.3}])))
    back = cell_from_json(cell_to_json(cell))
    assert back == cell and back.id == cell.id


def test_plugins_and_exit_descriptions(monkeypatch: Any) -> None:
    monkeypatch.setenv("MEMCOMP_PLUGINS", "fake_learners, ")
    assert load_plugins() == ["fake_learners"]
    with pytest.raises(InputError, match="no_such_plugin_module"):
        load_plugins(["no_such_plugin_module"])
    assert exit_description(-11) == "killed by signal SIGSEGV"
    assert exit_description(3) == "exit code 3"
    assert "out of host memory" in exit_description(-9)


def test_suite_names_cannot_escape_results_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outside"):
        new_results_dir(tmp_path, "../evil")
    with pytest.raises(InputError, match="outside"):
        new_results_dir(tmp_path, "/tmp/evil")
    assert not (tmp_path.parent / "evil").exists()
    bad = suite_dict([{"name": "fake-ok"}], name="../evil")
    with pytest.raises(InputError, match="name"):
        suite_from_dict(bad)
