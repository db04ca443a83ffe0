"""The paper's suites: they validate with the expected cells, and paper-memory runs on the CPU."""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
import torch
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import expand, load_suite
from memcomp.config.cells import Cell, Component
from memcomp.engine import run_cell, train

SUITES = Path(__file__).resolve().parent.parent / "suites"
KS = [5, 10, 15, 20]


def cells_of(name: str) -> list[Cell]:
    return expand(load_suite(SUITES / f"{name}.yaml"))


@pytest.mark.parametrize(
    ("name", "count"), [("paper-accuracy", 96), ("paper-memory", 72), ("paper-wallclock", 24)]
)
def test_paper_suites_validate(name: str, count: int) -> None:
    cells = cells_of(name)
    assert len(cells) == count and len({c.id for c in cells}) == count
    for c in cells:
        assert (c.setting.ways, c.setting.shots, c.setting.queries) == (5, 5, 5)
        assert c.train.meta_batch == 32 and c.train.optimizer == "adam"
        size, hidden = c.dataset.params["image_size"], c.backbone.params["hidden"]
        assert (c.backbone.name, size, hidden) in {("conv4", 32, 64), ("conv4", 84, 32)}
        if c.dataset.name in ("cifar-fs", "fc100"):
            assert size == 32
        if c.dataset.name in ("mini-imagenet", "tiered-imagenet"):
            assert size == 84
    res = CliRunner().invoke(app, ["validate", str(SUITES / f"{name}.yaml")])
    assert res.exit_code == 0, res.output
    assert f"({count} cells)" in res.output


# (dataset group, learner) -> (inner_steps, inner_lr, outer lr): paper.md section 4
PAPER_HP = {
    ("a", "maml"): (3, 0.5, 1e-3),
    ("b", "maml"): (3, 0.5, 5e-3),
    ("a", "anil"): (10, 0.1, 1e-4),
    ("b", "anil"): (5, 0.1, 1e-3),
    ("a", "itd-bio"): (20, 0.1, 1e-4),
    ("b", "itd-bio"): (20, 0.05, 1e-4),
    ("a", "mrml"): (20, 0.1, 1e-4),
    ("b", "mrml"): (20, 0.05, 1e-3),
}


def group(cell: Cell) -> str:
    return "a" if cell.dataset.name in ("cifar-fs", "fc100") else "b"


@pytest.mark.parametrize("name", ["paper-accuracy", "paper-wallclock"])
def test_paper_hyper_parameters(name: str) -> None:
    cells = cells_of(name)
    for c in cells:
        p = c.learner.params
        assert (p["inner_steps"], p["inner_lr"], c.train.lr) == PAPER_HP[group(c), c.learner.name]
        assert c.train.iterations == 2000 and c.test.episodes >= 600
        if c.learner.name == "mrml":
            assert p["cg_steps"] == 20 and p["l2"] == 0.01 and not p["warm_start"]
        if c.learner.name == "itd-bio":
            assert p["l2"] == 1e-4 and p["features"] == "per-step"
    assert {c.seed for c in cells} == {0, 1, 2}
    protocols = Counter(c.test.protocol for c in cells)
    if name == "paper-accuracy":
        assert protocols == {"head-finetune": 48, "native": 48}
        assert {c.dataset.name for c in cells} == {
            "cifar-fs",
            "fc100",
            "mini-imagenet",
            "tiered-imagenet",
        }
    else:
        assert protocols == {"head-finetune": 24}
        assert {c.dataset.name for c in cells} == {"cifar-fs", "mini-imagenet"}
        assert {c.train.eval_every for c in cells} == {50}
        assert {c.learner.params["execution"] for c in cells} == {"batched"}
    for c in cells:
        if c.test.protocol == "head-finetune":
            assert (c.test.finetune_steps, c.test.finetune_lr) == (20, 0.05)


def family(cell: Cell) -> str:
    features = cell.learner.params.get("features")
    return f"{cell.learner.name}/{features}" if cell.learner.name == "anil" else cell.learner.name


def test_paper_memory_grid() -> None:
    cells = cells_of("paper-memory")
    grid = Counter((c.dataset.params["image_size"], family(c)) for c in cells)
    families = ["maml", "anil/once", "anil/per-step", "itd-bio", "mrml"]
    families += ["maml-recompute", "f2sa", "sama", "r2d2"]  # the other memory families
    assert grid == {(size, f): len(KS) for size in (32, 84) for f in families}
    for size in (32, 84):
        for f in families:
            ks = [
                c.learner.params["inner_steps"]
                for c in cells
                if family(c) == f and c.dataset.params["image_size"] == size
            ]
            assert sorted(set(ks)) == KS
    for c in cells:
        assert c.dataset.name == "synthetic" and c.dataset.params["channels"] == 3
        assert c.learner.params["execution"] == "sequential"
        assert c.train.iterations <= 5 and c.test.episodes <= 10 and c.train.val_episodes <= 10


def shrink(cell: Cell) -> Cell:
    """The same cell at 16x16 with fewer classes, one task per meta-batch and tiny evaluations."""
    data = {
        **cell.dataset.params,
        "image_size": 16,
        "train_classes": 8,
        "val_classes": 5,
        "test_classes": 5,
        "images_per_class": 10,
    }
    return dataclasses.replace(
        cell,
        dataset=Component(cell.dataset.name, data),
        train=cell.train.model_copy(update={"meta_batch": 1, "iterations": 1, "val_episodes": 1}),
        test=cell.test.model_copy(update={"episodes": 2}),
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: much faster for these tiny models on a busy machine (no oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_shrunk(cells: list[Cell]) -> dict[tuple[int, str, int], float]:
    """Run cells inline on the CPU; peak memory (MB) by (hidden, family, K)."""
    peaks = {}
    # one measured meta-iteration after the warm-up: the CPU estimate is deterministic, so a
    # second one finds the same peak (and costs a third of the cell's time)
    one = functools.partial(train.measure_memory, iterations=1)
    for cell in cells:
        with mock.patch.object(train, "measure_memory", one):
            row = run_cell(shrink(cell), torch.device("cpu"), memory_source="cpu-estimate").row
        assert row["status"] == "ok", (cell.label(), row.get("error"), row.get("traceback"))
        assert row["mem_source"] == "cpu-estimate" and row["peak_mem_mb"] > 0
        assert row["test_acc"] is not None and 0 <= row["test_acc"] <= 100
        key = (cell.backbone.params["hidden"], family(cell), cell.learner.params["inner_steps"])
        peaks[key] = row["peak_mem_mb"]
    return peaks


def memory_cells(hidden: int, pick: set[tuple[str, int]]) -> list[Cell]:
    """paper-memory cells of one shape (by Conv4 width) whose (learner, K) is in ``pick``."""
    return [
        c
        for c in cells_of("paper-memory")
        if c.backbone.params["hidden"] == hidden
        and (c.learner.name, c.learner.params["inner_steps"]) in pick
    ]


def test_paper_memory_runs_mrml_flat() -> None:
    """The cheapest paper-memory cells (mrml, 84x84 part, Conv4-32) run end to end, flat in K."""
    cells = memory_cells(32, {("mrml", 5), ("mrml", 20)})
    assert len(cells) == 2
    peak = run_shrunk(cells)
    assert peak[32, "mrml", 20] == pytest.approx(peak[32, "mrml", 5], rel=0.02)


@pytest.mark.slow
def test_paper_memory_runs_maml_grows_mrml_flat() -> None:
    """maml's estimated peak grows with K (the CPU estimate is slow on maml's many small ops)."""
    cells = memory_cells(32, {("maml", 5), ("maml", 10), ("mrml", 5), ("mrml", 20)})
    assert len(cells) == 4
    peak = run_shrunk(cells)
    assert peak[32, "maml", 10] > 1.5 * peak[32, "maml", 5]
    assert peak[32, "mrml", 20] == pytest.approx(peak[32, "mrml", 5], rel=0.02)
    assert peak[32, "mrml", 20] < peak[32, "maml", 5]


@pytest.mark.slow
def test_paper_memory_runs_every_cell() -> None:
    """Every paper-memory cell, shrunk: maml, anil per-step and itd-bio grow with K (linearly),
    mrml and anil once stay flat, at both of the paper's shapes."""
    peak = run_shrunk(cells_of("paper-memory"))
    assert len(peak) == 72
    for hidden in (32, 64):
        for f in ("maml", "anil/per-step", "itd-bio"):
            p = [peak[hidden, f, k] for k in KS]
            steps = [b - a for a, b in zip(p, p[1:], strict=False)]
            assert min(steps) > 0, (hidden, f, p)
            assert max(steps) == pytest.approx(min(steps), rel=0.1), (hidden, f, p)
        for f in ("mrml", "anil/once", "f2sa", "sama", "r2d2"):
            p = [peak[hidden, f, k] for k in KS]
            assert max(p) == pytest.approx(min(p), rel=0.02), (hidden, f, p)
        rec = [peak[hidden, "maml-recompute", k] for k in KS]  # segments 3, 4, 4, 5
        assert rec[0] < rec[1] == pytest.approx(rec[2], rel=0.02) and rec[2] < rec[3]
        assert rec[3] < peak[hidden, "maml", 10]
        assert peak[hidden, "mrml", 20] < peak[hidden, "maml", 5]
