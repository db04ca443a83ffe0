"""Test plugin for the executor tests (``MEMCOMP_PLUGINS=fake_learners,cluster_plugin``).

- learner ``fake-slow``: ``fake-ok`` that sleeps ``step_sleep`` seconds per meta-step (so a test
  can act while a cell runs) and, when ``$MEMCOMP_TEST_ENV_LOG`` names a file, appends one JSON
  line per meta-step with its pid, ``CUDA_VISIBLE_DEVICES`` and the time (to check GPU pinning
  and concurrency from what the children really saw).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

from fake_learners import FakeOk, FakeParams
from pydantic import Field

from memcomp.learners import LEARNERS, StepStats
from memcomp.types import Task


class SlowParams(FakeParams):
    step_sleep: float = Field(0.0, ge=0, description="seconds slept per meta-step")


class FakeSlow(FakeOk):
    """fake-ok, slower, and telling which GPU it was given."""

    def meta_backward(self, tasks: Sequence[Task]) -> StepStats:
        log = os.environ.get("MEMCOMP_TEST_ENV_LOG")
        if log:
            entry = {
                "pid": os.getpid(),
                "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "t": time.time(),
                "restart": os.environ.get("SLURM_RESTART_COUNT"),
            }
            with open(log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        time.sleep(self.params.step_sleep)  # type: ignore[attr-defined]
        return super().meta_backward(tasks)


LEARNERS.register("fake-slow", "test: fake-ok sleeping per meta-step", SlowParams)(FakeSlow)
