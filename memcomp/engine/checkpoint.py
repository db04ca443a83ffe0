"""Training checkpoints of one cell, written through THE atomic write (:mod:`memcomp.fsutil`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from memcomp.engine.setup import CellSetup
from memcomp.fsutil import atomic_open


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
    loop state (``iteration``, ``generator``, ``train_seconds``, ``best``, ``curve``, ...)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint means starting over
        return None
    if not isinstance(state, dict) or state.get("cell_id") != setup.cell.id:
        return None
    setup.learner.load_state_dict(state["learner"])
    setup.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if setup.device.type == "cuda" and state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    gen = torch.Generator().manual_seed(0)
    gen.set_state(state["generator"])
    state["generator"] = gen
    return state
