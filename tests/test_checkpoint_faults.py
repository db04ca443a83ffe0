"""Issue 13 (beyond the list): a truncated or corrupt checkpoint on resume restarts the cell
from scratch with a warning; it neither crashes nor leaves half-restored weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok
import pytest
import torch
import yaml

from memcomp.config import load_suite
from memcomp.engine.checkpoint import load_checkpoint, save_checkpoint
from memcomp.engine.setup import setup_cell

SUITE = {
    "name": "ckpt",
    "device": "cpu",
    "datasets": [{"name": "fake-tiny"}],
    "settings": [{"ways": 3, "shots": 1, "queries": 2}],
    "backbones": [{"name": "conv4", "hidden": 4}],
    "train": {"iterations": 4, "meta_batch": 1, "checkpoint_every": 1},
    "learners": [{"name": "fake-ok"}],
}


def weights(setup: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in setup.learner.state_dict().items()}


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    else:
        state = torch.load(path, weights_only=True)
        if how == "missing-key":
            del state["optimizer"]
        else:  # wrong shapes: the first weight replaced by one of another size
            key = next(iter(state["learner"]))
            state["learner"][key] = torch.zeros(7, 7, 7)
        torch.save(state, path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing-key", "wrong-shapes"])
def test_a_damaged_checkpoint_starts_the_cell_over(tmp_path: Path, how: str, caplog) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    (cell,) = load_suite(path).cells
    setup = setup_cell(cell, torch.device("cpu"))
    ckpt = tmp_path / "c.pt"
    gen = torch.Generator().manual_seed(0)
    save_checkpoint(ckpt, setup, 2, gen, {"train_seconds": 1.0})
    assert load_checkpoint(ckpt, setup)["iteration"] == 2  # whole: restored
    fresh = setup_cell(cell, torch.device("cpu"))
    with torch.no_grad():
        for p in fresh.learner.parameters():
            p.add_(1.0)  # distinguishable from the checkpoint's weights
    before = weights(fresh)
    damage(ckpt, how)
    with caplog.at_level(logging.WARNING, logger="memcomp.engine.checkpoint"):
        assert load_checkpoint(ckpt, fresh) is None
    assert "the cell starts over" in caplog.text and str(ckpt) in caplog.text
    after = weights(fresh)
    assert all(torch.equal(before[k], after[k]) for k in before), "weights half-restored"
