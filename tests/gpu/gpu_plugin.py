"""Test plugin for the GPU pinning test (``MEMCOMP_PLUGINS=fake_learners,gpu_plugin``): learner
``gpu-probe`` is ``fake-ok`` that appends, at every meta-step, one JSON line to
``$MEMCOMP_TEST_ENV_LOG`` with what its process saw: ``CUDA_VISIBLE_DEVICES``, the number of
GPUs torch sees and the device its weights are on."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch
from fake_learners import FakeOk, FakeParams

from memcomp.learners import LEARNERS, StepStats
from memcomp.types import Task


class GpuProbe(FakeOk):
    """fake-ok, telling which GPU its process was given."""

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        log = os.environ.get("MEMCOMP_TEST_ENV_LOG")
        if log:
            entry = {
                "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "device_count": torch.cuda.device_count(),
                "weights_on": str(next(self.parameters()).device),
            }
            with open(log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        return super().meta_backward(tasks)


LEARNERS.register("gpu-probe", "test: fake-ok logging its GPU", FakeParams)(GpuProbe)
