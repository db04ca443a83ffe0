"""Build one cell: seed, load its data (through a :class:`DataCache`), backbone, learner,
optimizer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from memcomp.backbones import build_backbone
from memcomp.config.cells import Cell
from memcomp.data import EpisodeSampler, FewShotDataset, load_dataset
from memcomp.learners import LEARNERS, Learner


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
    """Seed, load data, build backbone + learner + optimiser on ``device``."""
    torch.manual_seed(cell.seed)
    data = (datasets or DataCache()).for_cell(cell)
    s = cell.setting
    train = EpisodeSampler(data, "train", s.ways, s.shots, s.queries)
    in_shape = data.split("train").image_shape
    backbone = build_backbone(cell.backbone.name, dict(cell.backbone.params), in_shape)
    learner = make_learner(cell, backbone)
    dtype = torch.float64 if cell.train.dtype == "float64" else torch.float32
    learner.to(device=device, dtype=dtype)
    return CellSetup(cell, device, dtype, data, train, learner, make_optimizer(cell, learner))
