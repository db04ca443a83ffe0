"""``benchmarks/speed.py``: a failing row never ends the benchmark (issue 17 point 4).

A peer's meta-gradient is checked in float64 on the run's device before it is timed; a mismatch
is the row's ``peer_check`` (status ``mismatch``), an error its status, and the rows after it
still run. Tiny shapes on the CPU (``--quick``); the real peer (higher) is checked in float64.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def speed(monkeypatch):
    path = ROOT / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_speed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def planted_peers(speed) -> dict:
    """A wrong peer (meta-gradient x 1.5), a raising one, then a correct one (memcomp itself)."""
    Peer = speed.load_peers()["higher-maml"].__class__  # noqa: N806

    def scaled(learner, tasks):
        def backward() -> None:
            learner.meta_backward(tasks)
            for p in learner.meta_parameters():
                p.grad.mul_(1.5)

        return backward

    def broken(learner, tasks):
        raise RuntimeError("peer exploded")

    def echo(learner, tasks):
        return lambda: learner.meta_backward(tasks)

    return {
        "wrong-maml": Peer("wrong-maml", "maml", scaled),
        "broken-maml": Peer("broken-maml", "maml", broken),
        "echo-maml": Peer("echo-maml", "maml", echo),
    }


TINY = dict(ways=2, shots=1, queries=1, meta_batch=2, inner_steps=1, cg_steps=1, iters=1,
            warmup=0, memory=False)  # fmt: skip


def test_a_mismatching_peer_is_a_row_and_the_benchmark_goes_on(speed, monkeypatch, tmp_path):
    planted = planted_peers(speed)
    monkeypatch.setattr(speed, "load_peers", lambda: planted)
    torch.set_num_threads(1)
    cfg = speed.Config(**TINY, learners=["fomaml"])
    rows = speed.run_shape(speed.QUICK_SHAPE, cfg, torch.device("cpu"), peers=True)
    by = {r["learner"]: r for r in rows}
    wrong, broken, echo = by["wrong-maml"], by["broken-maml"], by["echo-maml"]
    assert wrong["status"] == "mismatch" and wrong["peer_check"] == "mismatch 5.00e-01"
    assert wrong["peer_err_float64"] == pytest.approx(0.5) and wrong["seconds"] > 0  # timed
    assert broken["status"] == "error" and math.isnan(broken["seconds"])
    assert broken["peer_check"] == "error RuntimeError: peer exploded"
    assert echo["status"] == "ok" and echo["peer_check"] == "ok" and echo["peer_err_float64"] == 0
    out = tmp_path / "speed.csv"
    speed.write_csv(rows, out, cfg)
    with out.open() as fh:
        table = {r["learner"]: r for r in csv.DictReader(fh)}
    assert list(table) == ["floor", "fomaml", "wrong-maml", "broken-maml", "echo-maml"]
    assert table["wrong-maml"]["peer_check"] == "mismatch 5.00e-01"
    assert table["fomaml"]["peer_check"] == "" and table["fomaml"]["status"] == "ok"


def test_a_failing_learner_is_a_row_too(speed, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(speed.LEARNER_SPECS, "nonesuch", ("no-such-learner", {}))
    out = str(tmp_path / "s")
    args = ["--quick", "--learners", "nonesuch", "mrml", "--no-memory", "--out", out]
    rows = speed.main(args)
    assert [(r["learner"], r["status"]) for r in rows] == [
        ("floor", "ok"),
        ("nonesuch", "error"),
        ("nonesuch", "error"),
        ("mrml", "ok"),
        ("mrml", "ok"),
    ]
    assert "no-such-learner" in rows[1]["error"] and "Traceback" in capsys.readouterr().err


def test_an_oom_is_status_oom(speed, monkeypatch, tmp_path):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(speed, "floor_step", oom)
    out = str(tmp_path / "s")
    rows = speed.main(["--quick", "--learners", "mrml", "--no-memory", "--out", out])
    assert rows[0]["status"] == "oom" and math.isnan(rows[0]["vs_floor"])
    assert [r["status"] for r in rows[1:]] == ["ok", "ok"]


@pytest.mark.parametrize("inner_steps", [1, 5])
def test_higher_agrees_with_memcomp_in_float64(speed, inner_steps):
    pytest.importorskip("higher", reason="the `bench` extra (pip install higher)")
    torch.set_num_threads(1)
    cfg = replace(speed.Config(), ways=3, shots=2, queries=2, meta_batch=2, inner_steps=inner_steps)
    check = speed.check_peer(
        speed.load_peers()["higher-maml"], speed.QUICK_SHAPE, cfg, torch.device("cpu")
    )
    assert check["status"] == "ok" and check["peer_check"] == "ok"
    assert check["peer_err_float64"] <= 1e-12  # the same computation, in another order
    assert check["peer_err_run"] <= 1e-5  # float32 on the CPU (the GPU's differs: see README)
