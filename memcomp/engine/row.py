"""The configuration and provenance columns of one cell's results row (schema in
:mod:`memcomp.results.schema`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

import memcomp
from memcomp.config.cells import Cell
from memcomp.config.settings import precision_of, storage_dtype
from memcomp.measure.device import device_name
from memcomp.results.schema import component_columns

if TYPE_CHECKING:
    from memcomp.learners.driver import Execution

# Fixed episode seeds: every learner and training seed sees the same val/test episodes.
VAL_SEED = 10_007
TEST_SEED = 20_011


def base_row(cell: Cell, device: torch.device) -> dict[str, Any]:
    """Configuration and provenance columns of a results row; component parameters are prefixed
    columns (``learner.inner_steps``, ``dataset.image_size``, ``backbone.hidden``)."""
    c = cell
    row: dict[str, Any] = {
        "cell_id": c.id, "suite": c.suite, "label": c.label(), "status": "running", "error": "",
        "dataset": c.dataset.name, "ways": c.setting.ways, "shots": c.setting.shots,
        "queries": c.setting.queries, "backbone": c.backbone.name,
        "learner": c.learner.name, "seed": c.seed, "test_protocol": c.test.protocol,
        "test_episodes": c.test.episodes, "meta_batch": c.train.meta_batch,
        "outer_lr": c.train.lr, "optimizer": c.train.optimizer, "dtype": storage_dtype(c.train),
        "precision": precision_of(c.train), "compile": c.train.compile,
        "iterations": c.train.iterations, "bn_mode": "transductive (per-task batch stats)",
        "device": device.type, "device_name": device_name(device),
        "torch_version": torch.__version__, "memcomp_version": memcomp.__version__,
        "cpu_threads": torch.get_num_threads(),
        "dataset_params": json.dumps(c.dataset.params, sort_keys=True, default=str),
        "backbone_params": json.dumps(c.backbone.params, sort_keys=True, default=str),
        "protocol": (
            f"test={c.test.protocol}; episodes={c.test.episodes} fixed (seed {TEST_SEED}); "
            f"ci95=1.96*std/sqrt(n); time=median synced meta-step after 1 warm-up; "
            f"memory=max over 2 meta-iterations after 1 warm-up, above baseline"
        ),
    }  # fmt: skip
    row.update(component_columns(c.learner.params, c.dataset.params, c.backbone.params))
    return row


def final_columns(ex: Execution, meta_batch: int) -> dict[str, Any]:
    """``execution_mode``, ``task_chunk_used``, ``chunk_reason``, ``oom_retries`` of ``ex`` (the
    chunk and reason change when an out-of-memory halved the chunk)."""
    return {
        "execution_mode": ex.mode,
        "task_chunk_used": ex.chunk_used(meta_batch),
        "chunk_reason": ex.reason,
        "oom_retries": ex.oom_retries,
    }


def one_line(e: BaseException, limit: int = 500) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    return " ".join(str(e).split())[:limit] or type(e).__name__
