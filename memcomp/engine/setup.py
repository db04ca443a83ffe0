"""Build one cell: seed, load its data (through a :class:`DataCache`), backbone, learner,
optimizer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from memcomp.backbones import build_backbone
from memcomp.config.cells import Cell
from memcomp.config.settings import planned_flags
from memcomp.data import EpisodeSampler, FewShotDataset, load_dataset
from memcomp.engine.compiling import apply_compile
from memcomp.learners import LEARNERS, Learner
from memcomp.measure.precision import Autocast, PrecisionPlan


class DataCache:
    """Datasets loaded once per owner, keyed by name and parameters.

    Whoever runs cells owns one and passes it down (preflight loads into it, inline cells reuse it);
    a cell child process starts with its own.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, FewShotDataset] = {}

    def get(self, name: str, params: dict) -> FewShotDataset:
        key = json.dumps([name, params], sort_keys=True, default=str)
        if key not in self._loaded:
            self._loaded[key] = load_dataset(name, dict(params))
        return self._loaded[key]

    def for_cell(self, cell: Cell) -> FewShotDataset:
        return self.get(cell.dataset.name, dict(cell.dataset.params))

    def __len__(self) -> int:
        return len(self._loaded)


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
    plan: PrecisionPlan | None = None
    autocast: Autocast | None = field(default=None, repr=False)  # meta-steps and evaluation


def precision_plan(cell: Cell) -> PrecisionPlan:
    """The precision ``cell`` runs in: weights' dtype, TF32 and cuDNN flags, autocast dtype."""
    return PrecisionPlan.from_flags(planned_flags(cell.train))


def make_optimizer(cell: Cell, learner: Learner) -> torch.optim.Optimizer:
    params = learner.meta_parameters()
    if cell.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=cell.train.lr)
    return torch.optim.SGD(params, lr=cell.train.lr)


def make_learner(cell: Cell, backbone: torch.nn.Module) -> Learner:
    """The cell's learner around ``backbone``, given the cell's validated parameter model as it
    is (validated once, when the suite was loaded or the cell made: not again here)."""
    factory = LEARNERS.get(cell.learner.name).factory
    return factory(backbone, cell.setting.ways, cell.learner.model)  # type: ignore[no-any-return]


def setup_cell(cell: Cell, device: torch.device, datasets: DataCache | None = None) -> CellSetup:
    """Seed, load data, build backbone + learner + optimiser on ``device``, in the weights' dtype
    of the cell's precision (bf16: float32 master weights and optimiser state, autocast in the
    meta-steps; the process-wide flags are set by the caller, :func:`memcomp.measure.precision.
    precision_flags`)."""
    torch.manual_seed(cell.seed)
    data = (datasets or DataCache()).for_cell(cell)
    s = cell.setting
    train = EpisodeSampler(data, "train", s.ways, s.shots, s.queries)
    in_shape = data.split("train").image_shape
    backbone = build_backbone(cell.backbone.name, dict(cell.backbone.params), in_shape)
    learner = make_learner(cell, backbone)
    plan = precision_plan(cell)
    learner.to(device=device, dtype=plan.torch_dtype)
    apply_compile(learner, cell.learner.name, cell.train.compile)
    opt = make_optimizer(cell, learner)
    return CellSetup(
        cell, device, plan.torch_dtype, data, train, learner, opt, plan, Autocast(plan, device)
    )
