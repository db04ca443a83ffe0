"""Parameter models of the memory-reduction families added beside the paper's learners
(``maml-recompute``, ``f2sa``, ``sama``, ``r2d2``), importable without torch."""

from __future__ import annotations

from pydantic import Field

from memcomp.learners.params import ExecutionParams, MamlParams
from memcomp.registry import MAX_STEPS


class RecomputeParams(MamlParams):
    """Parameters of ``maml-recompute``."""

    segment: int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="inner steps per checkpointed segment (None: ceil(sqrt(K))); the peak holds "
        "one segment's graph plus K/segment stored weights",
    )


class HeadBilevelParams(ExecutionParams):
    """Parameters shared by the head-level first-order learners (``f2sa``, ``sama``)."""

    inner_steps: int = Field(
        20, ge=0, le=MAX_STEPS, description="lower-level gradient steps K on the head"
    )
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="lower-level step size")
    l2: float = Field(
        0.01,
        ge=0,
        allow_inf_nan=False,
        description="(l2/2)||phi||^2 in the lower level; > 0 makes it strongly convex",
    )


class F2saParams(HeadBilevelParams):
    """Parameters of ``f2sa``."""

    lam: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="penalty lambda: phi_lam minimises g + f/lambda; hypergradient error "
        "O(1/lambda) with exact lower-level solves",
    )


class SamaParams(HeadBilevelParams):
    """Parameters of ``sama``."""

    alpha: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="inverse base Jacobian approximated by alpha * I (SAMA: identity)",
    )
    fd_radius: float = Field(
        0.01,
        gt=0,
        allow_inf_nan=False,
        description="finite-difference step along v: eps = fd_radius / ||v||",
    )


class R2d2Params(ExecutionParams):
    """Parameters of ``r2d2``."""

    inner_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="unused: the head is solved in closed form"
    )
    lam: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="ridge strength lambda (initial if learned)"
    )
    learn_lam: bool = Field(True, description="meta-learn lambda (through log lambda), as R2D2")
    scale: float = Field(
        1.0, allow_inf_nan=False, description="initial output scale of the query logits"
    )
