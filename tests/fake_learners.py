"""Test-only plugin: a tiny in-memory dataset and learners that fail on purpose.

Imported directly by tests, or in cell subprocesses through ``MEMCOMP_PLUGINS=fake_learners``
(with ``tests/`` on the import path). Registered names:

- dataset ``fake-tiny``: seeded random class templates plus noise, 1 x 16 x 16, small;
  ``fake-missing`` always fails to load (a dataset that is not present).
- learner ``fake-ok``: a small prototype learner that really trains (deterministic);
- ``fake-oom`` / ``fake-nan`` / ``fake-error`` / ``fake-crash``: like ``fake-ok`` until meta-step
  ``fail_at`` (counted per learner object; the memory measurement runs on a copy first), then
  raise ``torch.OutOfMemoryError``, return a NaN loss, raise ``ValueError``, or end the process
  (``how``: ``exit`` = ``os._exit(7)``, ``segv`` = SIGSEGV).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from memcomp.data import DATASETS, DatasetParams
from memcomp.data.base import FewShotDataset, ImageSplit, Task
from memcomp.errors import DataError
from memcomp.learners import LEARNERS, Learner, LearnerParams, StepStats


class TinyParams(DatasetParams):
    image_size: int = Field(16, ge=4, le=64)
    classes: int = Field(8, ge=1, description="classes per split")
    per_class: int = Field(6, ge=1, description="images per class")
    seed: int = 0


@DATASETS.register("fake-tiny", "test: tiny seeded random dataset", TinyParams)
def load_tiny(p: TinyParams) -> FewShotDataset:
    gen = torch.Generator().manual_seed(p.seed)
    splits = {}
    for name in ("train", "val", "test"):
        s = p.image_size
        templates = torch.rand(p.classes, 1, s, s, generator=gen) * 200
        noise = torch.rand(p.classes, p.per_class, 1, s, s, generator=gen) * 55
        images = (templates[:, None] + noise).reshape(-1, 1, s, s).to(torch.uint8)
        labels = torch.arange(p.classes).repeat_interleave(p.per_class)
        splits[name] = ImageSplit(images, labels)
    return FewShotDataset("fake-tiny", splits, {"checksum": f"tiny-{p.seed}"})


class MissingParams(DatasetParams):
    root: str = "/nonexistent/fake-missing"


@DATASETS.register("fake-missing", "test: a dataset that is never present", MissingParams)
def load_missing(p: MissingParams) -> FewShotDataset:
    raise DataError(f"dataset 'fake-missing' not found under {p.root}")


class FakeParams(LearnerParams):
    fail_at: int = Field(1, ge=1, description="meta-step (per learner object) that fails")
    how: Literal["exit", "segv"] = "exit"


class FakeOk(Learner):
    """Prototypical-network style learner: fast, deterministic, really learns."""

    meta_learns_head = False
    exact = True
    test_params = {"fail_at": 10**9}  # the contract test never reaches the failure

    def __init__(self, backbone: torch.nn.Module, ways: int, params: FakeParams) -> None:
        super().__init__(backbone, ways, params)
        self.calls = 0

    def _logits(self, task: Task) -> Tensor:
        zs, zq = self.backbone(task.xs), self.backbone(task.xq)
        protos = torch.stack([zs[task.ys == c].mean(0) for c in range(self.ways)])
        return -(torch.cdist(zq, protos) ** 2)

    def fail(self) -> Tensor | None:
        """Subclasses fail here; a returned tensor replaces the loss."""
        return None

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        self.calls += 1
        losses = []
        for t in tasks:
            loss = F.cross_entropy(self._logits(t), t.yq) / len(tasks)
            loss.backward()
            losses.append(loss.detach() * len(tasks))
        bad = self.fail() if self.calls >= self.params.fail_at else None  # type: ignore[attr-defined]
        if bad is not None:
            return StepStats(bad)
        return StepStats(torch.stack(losses).mean())

    def adapt_predict(self, task: Task) -> Tensor:
        with torch.no_grad():
            return self._logits(task)


class FakeOom(FakeOk):
    def fail(self) -> Tensor | None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


class FakeNan(FakeOk):
    def fail(self) -> Tensor | None:
        return torch.tensor(float("nan"))


class FakeError(FakeOk):
    def fail(self) -> Tensor | None:
        raise ValueError(f"boom at meta-step {self.calls}")


class FakeCrash(FakeOk):
    def fail(self) -> Tensor | None:
        if self.params.how == "segv":  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(7)


class FakeFillDisk(FakeOk):
    """Fills the file system holding ``$MEMCOMP_TEST_FILL`` at its first meta-step, then trains
    normally (so the disk is full when its row is saved)."""

    def fail(self) -> Tensor | None:
        path = os.environ.get("MEMCOMP_TEST_FILL")
        if path and not os.path.exists(path):
            with open(path, "ab") as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
                except OSError:
                    pass
        return None


for _name, _cls in [
    ("fake-ok", FakeOk),
    ("fake-oom", FakeOom),
    ("fake-nan", FakeNan),
    ("fake-error", FakeError),
    ("fake-crash", FakeCrash),
    ("fake-fill-disk", FakeFillDisk),
]:
    LEARNERS.register(_name, f"test: {_cls.__doc__ or _name}", FakeParams)(_cls)
