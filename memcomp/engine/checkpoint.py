"""Training checkpoints of one cell, written through THE atomic write (:mod:`memcomp.fsutil`)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

from memcomp.engine.setup import CellSetup
from memcomp.fsutil import atomic_open

log = logging.getLogger(__name__)
REQUIRED = ("iteration", "learner", "optimizer", "generator", "torch_rng", "cuda_rng")


def one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def save_checkpoint(
    path: Path,
    setup: CellSetup,
    iteration: int,
    gen: torch.Generator,
    loop: dict[str, Any],
) -> None:
    """Atomically save everything needed to continue training after ``iteration``."""
    state = {
        "cell_id": setup.cell.id,
        "iteration": iteration,
        "learner": setup.learner.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if setup.device.type == "cuda" else [],
        **loop,
    }
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: Path, setup: CellSetup) -> dict[str, Any] | None:
    """Restore learner, optimiser and RNG state from ``path`` (if it is this cell's); return the
    loop state (``iteration``, ``generator``, ``train_seconds``, ``best``, ``curve``, ...).

    A checkpoint that cannot be read or restored (truncated, corrupt, another cell's, missing
    keys, wrong shapes) means starting the cell over: None, with a warning logged, and the
    learner and optimiser left as they were.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint means starting over
        log.warning("%s: unreadable checkpoint (%s); the cell starts over", path, one_line(e))
        return None
    if not isinstance(state, dict) or state.get("cell_id") != setup.cell.id:
        log.warning("%s: not a checkpoint of cell %s; the cell starts over", path, setup.cell.id)
        return None
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        log.warning("%s: checkpoint lacks %s; the cell starts over", path, ", ".join(missing))
        return None
    learner = copy.deepcopy(setup.learner.state_dict())
    optimizer = copy.deepcopy(setup.optimizer.state_dict())
    rng = torch.get_rng_state()
    try:
        setup.learner.load_state_dict(state["learner"])
        setup.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if setup.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        gen = torch.Generator().manual_seed(0)
        gen.set_state(state["generator"])
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint: start over, as if none
        setup.learner.load_state_dict(learner)
        setup.optimizer.load_state_dict(optimizer)
        torch.set_rng_state(rng)
        log.warning("%s: checkpoint cannot be restored (%s); the cell starts over", path,
                    one_line(e))  # fmt: skip
        return None
    state["generator"] = gen
    return state
