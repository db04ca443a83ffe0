"""How big a cell is, estimated from its shapes alone: the work it does and the memory it holds.

Two numbers per cell, both torch-free (preflight compares them with the machine, ``validate``
with the work bound), so that a suite that validates but could never finish or fit is refused
before it runs (``--no-size-check`` overrides):

- **image passes**: images sent through the backbone (forward and backward counted as one pass).
  A task of ``ways x (shots + queries)`` images costs ``1 + S`` passes, where ``S`` sums the
  learner's ``*_steps`` parameters (inner steps, CG steps: each at least one pass over the
  task); training does ``iterations x meta_batch`` tasks, validation ``val_episodes`` every
  ``eval_every`` iterations, the test ``episodes`` (``head-finetune``: one pass, its steps
  train a linear head on the features).
- **memory held**: a lower bound, the images memcomp holds at once as float tensors: the fixed
  validation episodes plus one meta-batch during training, the fixed test episodes at the end.
  Activations come on top, so a cell refused by this bound could never fit.

:data:`MAX_IMAGE_PASSES` is about 100x a paper-scale MAML run on miniImageNet (60,000
iterations x 4 tasks x 80 images x 6 passes ~ 1.2e8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from memcomp.config.cells import Cell

MAX_IMAGE_PASSES = 10**10
FLOAT_BYTES = {"float32": 4, "float64": 8}
NO_SIZE_CHECK = "--no-size-check"


@dataclass(frozen=True)
class CellSize:
    """A cell's estimated work (``image_passes``) and the least memory it holds (bytes):
    ``host_bytes`` in all, ``device_bytes`` of that on the device (one meta-batch)."""

    image_passes: int
    host_bytes: int
    device_bytes: int
    factors: str  # how image_passes was counted, for messages

    def fits(self, memory_bytes: float) -> bool:
        return self.host_bytes <= memory_bytes


def _image_shape(cell: Cell) -> tuple[int, int, int]:
    from memcomp.data import dataset_supply

    params = dict(cell.dataset.params)
    try:
        supply = dataset_supply(cell.dataset.name, params)
    except Exception:  # noqa: BLE001 - reported by feasibility; here the size is what is known
        supply = None
    channels = (supply.channels if supply is not None else None) or 1
    side = (supply.image_size if supply is not None else None) or params.get("image_size") or 1
    return int(channels), int(side), int(side)


def steps_per_task(cell: Cell) -> int:
    """``S``: the sum of the learner's integer ``*_steps`` parameters."""
    return sum(
        int(v)
        for k, v in cell.learner.params.items()
        if k.endswith("_steps") and isinstance(v, int) and not isinstance(v, bool)
    )


def cell_size(cell: Cell) -> CellSize:
    """The estimate for one cell (see the module docstring)."""
    s, tr, te = cell.setting, cell.train, cell.test
    images = s.ways * (s.shots + s.queries)
    c, h, w = _image_shape(cell)
    passes = 1 + steps_per_task(cell)
    evals = math.ceil(tr.iterations / tr.eval_every)
    test_passes = passes if te.protocol == "native" else 1
    total = images * (
        tr.iterations * tr.meta_batch * passes
        + evals * tr.val_episodes * passes
        + te.episodes * test_passes
    )
    task_bytes = images * c * h * w * FLOAT_BYTES["float32"]
    batch_bytes = tr.meta_batch * images * c * h * w * FLOAT_BYTES.get(tr.dtype, 4)
    host = max(tr.val_episodes * task_bytes + batch_bytes, te.episodes * task_bytes)
    factors = (
        f"{tr.iterations:,} iterations x {tr.meta_batch:,} tasks x {images:,} images x "
        f"{passes:,} passes, plus validation and test"
    )
    return CellSize(total, host, batch_bytes, factors)


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def size_problems(
    cells: Iterable[Cell],
    host_memory: float | None = None,
    device_memory: float | None = None,
    device_name: str = "the GPU",
) -> list[tuple[Cell, str]]:
    """``(cell, message)`` for each cell whose work exceeds :data:`MAX_IMAGE_PASSES`, or whose
    least memory exceeds ``host_memory`` (bytes) or, on a GPU, its meta-batch ``device_memory``."""
    out: list[tuple[Cell, str]] = []
    fix = f"lower them, or pass {NO_SIZE_CHECK} to run it anyway"
    for cell in cells:
        size = cell_size(cell)
        st = cell.setting
        who = f"{cell.learner.label()} on {cell.dataset.name} {st.ways}w{st.shots}s q{st.queries}"
        if size.image_passes > MAX_IMAGE_PASSES:
            out.append((cell, (
                f"{who} would take about {size.image_passes:.1e} image passes "
                f"({size.factors}), more than the {MAX_IMAGE_PASSES:.0e} a run can finish; {fix}"
            )))  # fmt: skip
        if host_memory is not None and size.host_bytes > host_memory:
            out.append((cell, (
                f"{who} holds at least {gib(size.host_bytes)} of images (validation "
                f"or test episodes and a meta-batch), more than this machine's "
                f"{gib(host_memory)} of memory; {fix}"
            )))  # fmt: skip
        elif device_memory is not None and size.device_bytes > device_memory:
            out.append((cell, (
                f"{who}: one meta-batch alone needs {gib(size.device_bytes)}, more than "
                f"{device_name}'s {gib(device_memory)}; {fix}"
            )))  # fmt: skip
    return out


def host_memory_bytes() -> float | None:
    """This machine's physical memory in bytes (None when the OS does not say)."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
