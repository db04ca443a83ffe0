"""Run one cell: build data, backbone and learner, meta-train, measure, evaluate.

Data flows one way: a :class:`~memcomp.config.Cell` goes in, a :class:`CellOutcome` (one results
row, the validation curve and per-episode test accuracies) comes out. Failures inside a cell
(out-of-memory, divergence, any other error) become a row with that status, not an exception.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

import memcomp
from memcomp.backbones import build_backbone
from memcomp.config.cells import Cell
from memcomp.data import EpisodeSampler, FewShotDataset, Task, load_dataset
from memcomp.evaluation import AccuracyStats, evaluate
from memcomp.learners import Learner, build_learner
from memcomp.measure.memory import MemoryMeter, MemoryResult
from memcomp.measure.phases import phase
from memcomp.measure.timing import StepTimer, sync

# Fixed episode seeds: every learner and training seed sees the same val/test episodes.
VAL_SEED = 10_007
TEST_SEED = 20_011


class DivergedError(RuntimeError):
    """The meta-loss or meta-gradient became NaN or infinite."""

    def __init__(self, iteration: int) -> None:
        super().__init__(f"loss or gradient not finite at iteration {iteration}")
        self.iteration = iteration


class Progress(Protocol):
    """What the runner reports while a cell trains (the CLI draws it)."""

    def cell_started(self, cell: Cell, iterations: int) -> None: ...
    def iteration_done(self, iteration: int, val_acc: float | None) -> None: ...


@dataclass
class CellOutcome:
    row: dict[str, Any]
    curve: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.row.get("status") == "ok"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from memcomp.errors import InputError

        raise InputError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return dev


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


_DATA_CACHE: dict[str, FewShotDataset] = {}


def get_dataset(cell: Cell) -> FewShotDataset:
    """Load (once per process) the cell's dataset."""
    key = json.dumps([cell.dataset.name, cell.dataset.params], sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(cell.dataset.name, dict(cell.dataset.params))
    return _DATA_CACHE[key]


def clear_data_cache() -> None:
    """Forget datasets loaded in this process (e.g. by preflight, before cells run elsewhere)."""
    _DATA_CACHE.clear()


@dataclass
class CellSetup:
    """Everything a cell needs to train; built by :func:`setup_cell`."""

    cell: Cell
    device: torch.device
    dtype: torch.dtype
    data: FewShotDataset
    train: EpisodeSampler
    learner: Learner
    optimizer: torch.optim.Optimizer


def make_optimizer(cell: Cell, learner: Learner) -> torch.optim.Optimizer:
    params = learner.meta_parameters()
    if cell.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=cell.train.lr)
    return torch.optim.SGD(params, lr=cell.train.lr)


def setup_cell(cell: Cell, device: torch.device) -> CellSetup:
    """Seed, load data, build backbone + learner + optimiser on ``device``."""
    torch.manual_seed(cell.seed)
    data = get_dataset(cell)
    s = cell.setting
    train = EpisodeSampler(data, "train", s.ways, s.shots, s.queries)
    in_shape = data.split("train").image_shape
    backbone = build_backbone(cell.backbone.name, dict(cell.backbone.params), in_shape)
    learner = build_learner(cell.learner.name, dict(cell.learner.params), backbone, s.ways)
    dtype = torch.float64 if cell.train.dtype == "float64" else torch.float32
    learner.to(device=device, dtype=dtype)
    return CellSetup(cell, device, dtype, data, train, learner, make_optimizer(cell, learner))


def meta_step(learner: Learner, opt: torch.optim.Optimizer, tasks: list[Task]) -> Any:
    """One meta-iteration: zero grads, meta-gradient, outer update."""
    opt.zero_grad(set_to_none=True)
    stats = learner.meta_backward(tasks)
    with phase("outer_update"):
        opt.step()
    return stats


def _finite(stats: Any, learner: Learner) -> bool:
    vals = [stats.loss.detach().reshape(())]
    grads = [p.grad for p in learner.meta_parameters() if p.grad is not None]
    if grads:
        vals.append(torch.stack([g.detach().abs().sum() for g in grads]).sum())
    return bool(torch.isfinite(torch.stack(vals).to(torch.float64)).all())


def measure_memory(setup: CellSetup, iterations: int = 2, source: str = "auto") -> MemoryResult:
    """Peak memory of meta-iterations on a copy of the learner: one warm-up, then measured ones."""
    learner = copy.deepcopy(setup.learner)
    opt = make_optimizer(setup.cell, learner)
    opt.load_state_dict(setup.optimizer.state_dict())
    gen = torch.Generator().manual_seed(setup.cell.seed + 1)
    batches = [
        [
            t.to(setup.device, setup.dtype)
            for t in setup.train.sample_batch(gen, setup.cell.train.meta_batch)
        ]
        for _ in range(iterations + 1)
    ]
    meter = MemoryMeter(setup.device, source, resident=[learner, opt, batches])
    meta_step(learner, opt, batches[0])  # warm-up: optimiser state, allocator, lazy init
    for tasks in batches[1:]:
        with meter.measure():
            meta_step(learner, opt, tasks)
    del learner, opt, batches
    return meter.result()


def measure_cell_memory(
    cell: Cell, device: str = "cpu", iterations: int = 2, source: str = "auto"
) -> MemoryResult:
    """Peak memory of ``cell``'s meta-iterations (used by ``memcomp check``)."""
    return measure_memory(setup_cell(cell, resolve_device(device)), iterations, source)


def base_row(cell: Cell, device: torch.device) -> dict[str, Any]:
    """Configuration and provenance columns of a results row."""
    c = cell
    row: dict[str, Any] = {
        "cell_id": c.id, "suite": c.suite, "label": c.label(), "status": "running", "error": "",
        "dataset": c.dataset.name, "ways": c.setting.ways, "shots": c.setting.shots,
        "queries": c.setting.queries, "image_size": c.dataset.params.get("image_size"),
        "backbone": c.backbone.name, "hidden": c.backbone.params.get("hidden"),
        "learner": c.learner.name, "seed": c.seed, "test_protocol": c.test.protocol,
        "test_episodes": c.test.episodes, "meta_batch": c.train.meta_batch,
        "outer_lr": c.train.lr, "optimizer": c.train.optimizer, "dtype": c.train.dtype,
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
    for k, v in c.learner.params.items():
        row[k] = v
    return row


def run_cell(
    cell: Cell,
    device: torch.device,
    progress: Progress | None = None,
    memory_source: str = "auto",
    on_setup: Callable[[CellSetup], None] | None = None,
    checkpoint: Path | None = None,
) -> CellOutcome:
    """Meta-train and evaluate one cell; every failure is a row with a status.

    With ``checkpoint`` and ``cell.train.checkpoint_every``, training state is saved there every
    that many iterations and a run finding a checkpoint of the same cell continues from it.
    """
    row = base_row(cell, device)
    out = CellOutcome(row)
    try:
        setup = setup_cell(cell, device)
        row["dataset_checksum"] = setup.data.manifest.get("checksum", "")
        if on_setup:
            on_setup(setup)
        _measure_into(row, setup, memory_source)
        _train_and_test(setup, out, progress, checkpoint)
        row["status"] = "ok"
    except DivergedError as e:
        row.update(status="diverged", diverged_at=e.iteration, error=str(e))
    except torch.OutOfMemoryError as e:
        row.update(status="oom", error=one_line(e))
        if device.type == "cuda":
            row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    except Exception as e:  # noqa: BLE001 - a failing cell must not stop the suite
        if memcomp_input_error(e):
            raise
        row.update(status="error", error=f"{type(e).__name__}: {one_line(e)}")
        row["traceback"] = traceback.format_exc(limit=8)
    row["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return out


def memcomp_input_error(e: Exception) -> bool:
    from memcomp.errors import InputError

    return isinstance(e, InputError)


def one_line(e: BaseException, limit: int = 500) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def _measure_into(row: dict[str, Any], setup: CellSetup, source: str) -> None:
    mem = measure_memory(setup, source=source)
    row.update(
        peak_mem_mb=mem.peak_mb,
        mem_baseline_mb=mem.baseline_mb,
        mem_reserved_mb=mem.reserved_mb,
        mem_source=mem.source,
    )
    for name, mb in mem.phases.items():
        row[f"mem_{name}_mb"] = mb


def _train_and_test(
    setup: CellSetup, out: CellOutcome, progress: Progress | None, checkpoint: Path | None = None
) -> None:
    cell, learner, dev = setup.cell, setup.learner, setup.device
    s, tr = cell.setting, cell.train
    val = EpisodeSampler(setup.data, "val", s.ways, s.shots, s.queries)
    val_eps = val.fixed_episodes(tr.val_episodes, VAL_SEED)
    gen = torch.Generator().manual_seed(cell.seed)
    timer = StepTimer(dev, warmup=1)
    residuals: list[torch.Tensor] = []
    train_seconds = 0.0
    best = -math.inf
    every = tr.checkpoint_every if checkpoint is not None else None
    start = 0
    if every is not None and checkpoint is not None:
        state = load_checkpoint(checkpoint, setup)
        if state is not None:
            start, gen = state["iteration"], state["generator"]
            train_seconds, best = state["train_seconds"], state["best"]
            timer.durations = list(state["durations"])
            residuals = [torch.tensor(r) for r in state["residuals"]]
            out.curve.extend(state["curve"])
            out.row["resumed_from_iteration"] = start
    if progress:
        progress.cell_started(cell, tr.iterations)
        if start:
            progress.iteration_done(start, out.curve[-1]["val_acc"] if out.curve else None)
    for it in range(start + 1, tr.iterations + 1):
        t0 = time.perf_counter()
        tasks = [t.to(dev, setup.dtype) for t in setup.train.sample_batch(gen, tr.meta_batch)]
        timer.start()
        stats = meta_step(learner, setup.optimizer, tasks)
        timer.stop()
        if not _finite(stats, learner):
            raise DivergedError(it)
        if stats.cg_residual is not None:
            residuals.append(stats.cg_residual.detach().reshape(()))
        sync(dev)
        train_seconds += time.perf_counter() - t0
        val_acc = None
        if it % tr.eval_every == 0 or it == tr.iterations:
            acc = evaluate(learner, val_eps, cell.test, dev, setup.dtype)
            val_acc = acc.mean
            best = max(best, val_acc)
            out.curve.append(
                {"cell_id": cell.id, "iteration": it, "train_seconds": train_seconds,
                 "val_acc": acc.mean, "val_ci95": acc.ci95}
            )  # fmt: skip
        if every is not None and checkpoint is not None and it % every == 0 and it < tr.iterations:
            save_checkpoint(
                checkpoint, setup, it, gen,
                {"train_seconds": train_seconds, "best": best, "curve": out.curve,
                 "durations": timer.durations, "residuals": [float(r) for r in residuals]},
            )  # fmt: skip
        if progress:
            progress.iteration_done(it, val_acc)
    test = EpisodeSampler(setup.data, "test", s.ways, s.shots, s.queries)
    stats_t: AccuracyStats = evaluate(
        learner, test.fixed_episodes(cell.test.episodes, TEST_SEED), cell.test, dev, setup.dtype
    )
    out.episodes = stats_t.accs
    out.row.update(
        test_acc=stats_t.mean, test_ci95=stats_t.ci95, test_std=stats_t.std,
        best_val_acc=best, final_val_acc=out.curve[-1]["val_acc"] if out.curve else None,
        sec_per_iter=timer.median, train_seconds=train_seconds,
        cg_residual=float(residuals[-1]) if residuals else None,
    )  # fmt: skip


# ----------------------------------------------------------------------------- checkpoints


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
