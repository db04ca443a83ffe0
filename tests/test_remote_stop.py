"""The cooperative stop of a remote cell (what Ctrl-C uses on Ray instead of ``ray.cancel``):
``run_cell_request`` asks ``should_stop`` while the cell runs, kills its child when told and says
so; told before it starts, it starts nothing."""

from __future__ import annotations

import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "cluster"))

from memcomp.config import expand, load_suite  # noqa: E402
from memcomp.exec.child import cell_to_json  # noqa: E402
from memcomp.exec.remote import STOP_POLL_S, run_cell_request  # noqa: E402


def _request(tmp_path: Path, iterations: int) -> dict:
    data = {
        "name": "stop", "seeds": [0], "device": "cpu", "datasets": [{"name": "fake-tiny"}],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {"iterations": iterations, "meta_batch": 2, "eval_every": iterations,
                  "val_episodes": 2},
        "test": {"episodes": 3}, "learners": [{"name": "fake-slow", "step_sleep": 0.5}],
    }  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    cell = expand(load_suite(tmp_path / "s.yaml"))[0]
    return {"device": "cpu", "memory_limit_mb": None, "memory_source": "auto",
            "plugins": ["fake_learners", "cluster_plugin"], "threads": 1,
            "cell": cell_to_json(cell)}  # fmt: skip


@pytest.fixture(autouse=True)
def _plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    import cluster_plugin  # noqa: F401 - registers fake-slow (and fake-tiny) here
    import fake_learners  # noqa: F401

    here = Path(__file__).parent
    monkeypatch.setenv("MEMCOMP_PLUGINS", "fake_learners,cluster_plugin")
    monkeypatch.setenv("PYTHONPATH", f"{here.parent}:{here}:{here / 'cluster'}")


def test_a_running_cell_stops_when_asked(tmp_path: Path) -> None:
    asked: list[float] = []
    events: list[dict] = []
    t0 = time.monotonic()

    def should_stop() -> bool:
        asked.append(time.monotonic() - t0)
        return any(e.get("event") == "iter" for e in events)  # once it is training

    result = run_cell_request(_request(tmp_path, 200), events.append, should_stop)  # ~100 s
    took = time.monotonic() - t0
    assert result["stopped"] is True and result["row"] is None
    assert result["exit_code"] is not None and result["exit_code"] < 0  # killed, not finished
    assert any(e.get("event") == "iter" for e in events)
    assert took < 60, took  # the 200 iterations of 0.5 s were not run
    polls = asked[1:]  # asked[0]: before the child started
    assert polls and all(b - a >= 0.8 * STOP_POLL_S for a, b in pairwise(polls))


def test_a_cell_told_to_stop_before_it_starts_starts_nothing(tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_cell_request(_request(tmp_path, 3), events.append, lambda: True)
    assert result["stopped"] is True and result["row"] is None and events == []
    assert result["exit"] == "stopped before it started"


def test_without_a_stop_the_cell_finishes(tmp_path: Path) -> None:
    result = run_cell_request(_request(tmp_path, 2), None, lambda: False)
    assert result["stopped"] is False and result["row"]["status"] == "ok", result["log"][-2000:]
