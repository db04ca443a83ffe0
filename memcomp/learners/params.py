"""Parameter models of the built-in learners, importable without torch.

The learner registry (:mod:`memcomp.learners`) validates, lists and documents parameters from
these models before (or without) importing an algorithm's implementation.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from memcomp.registry import MAX_STEPS, Params, added_later

Execution = Literal["auto", "sequential", "batched"]
HvpMode = Literal["reverse", "forward"]
HVP_DESCRIPTION = (
    "Hessian-vector products by double backward (reverse) or torch.func.jvp over grad "
    "(forward); same values"
)
FeatureMode = Literal["once", "per-step"]
SolverName = Literal["cg", "neumann"]
SOLVER_DESCRIPTION = (
    "linear solver of the implicit system: conjugate gradient (cg) or the truncated Neumann "
    "series (neumann: cg_steps terms of step neumann_alpha; memcomp/numerics/solvers.py)"
)


def _solver_options(params: ImamlParams | MrmlParams) -> None:
    if params.neumann_alpha is not None and params.solver != "neumann":
        raise ValueError(
            f"neumann_alpha is the step of solver neumann, but solver is {params.solver}: "
            "drop neumann_alpha or set solver: neumann"
        )


class LearnerParams(Params):
    """Parameters every learner accepts."""

    inner_steps: int = Field(5, ge=0, le=MAX_STEPS, description="inner-loop (lower-level) steps K")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner-loop step size")


class ExecutionParams(LearnerParams):
    """Learner parameters with an execution mode (see :mod:`memcomp.learners.driver`)."""

    execution: Execution = Field(
        "auto",
        description="tasks of a meta-batch one after another (sequential), together (batched), or "
        "chosen per cell (auto: on a GPU the largest task chunk whose predicted peak fits the free "
        "memory or --memory-limit, on a CPU the learner's measured fastest mode); same "
        "meta-gradient",
    )
    task_chunk: int | None = Field(
        None,
        ge=1,
        description="batched mode: tasks processed together (None: the whole meta-batch); "
        "smaller chunks use less memory. Given with execution auto: batched in chunks of this "
        "size (auto chooses nothing)",
    )


class MamlParams(ExecutionParams):
    """Parameters of ``maml`` and ``fomaml``."""

    inner_steps: int = Field(
        5, ge=0, le=MAX_STEPS, description="inner SGD steps K on the support set"
    )
    inner_lr: float = Field(0.4, gt=0, allow_inf_nan=False, description="inner SGD step size")
    test_inner_steps: int | None = Field(
        None, ge=0, le=MAX_STEPS, description="inner steps at native meta-test (None: inner_steps)"
    )


class AnilParams(ExecutionParams):
    """Parameters of ``anil``."""

    inner_steps: int = Field(5, ge=0, le=MAX_STEPS, description="inner SGD steps K on the head")
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner SGD step size")
    features: FeatureMode = Field(
        "once",
        description="support features computed once per task (memory flat in K) or re-computed "
        "at every inner step (learn2learn / paper style, memory grows with K)",
    )


class ItdBioParams(AnilParams):
    """Parameters of ``itd-bio``."""

    inner_steps: int = Field(
        20, ge=0, le=MAX_STEPS, description="inner gradient steps K on the head"
    )
    l2: float = Field(
        1e-4,
        ge=0,
        allow_inf_nan=False,
        description="(l2/2)||phi||^2 on the head in the inner objective (paper's code: 1e-4 * sum "
        "of non-squared norms)",
    )
    features: FeatureMode = Field(
        "per-step",
        description="re-run the backbone at every inner step (paper) or compute features once",
    )


class ImamlParams(ExecutionParams):
    """Parameters of ``imaml``."""

    inner_steps: int = Field(
        10, ge=0, le=MAX_STEPS, description="gradient steps K on the proximal objective"
    )
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="inner step size")
    lam: float = Field(1.0, gt=0, allow_inf_nan=False, description="proximal strength lambda")
    cg_steps: int = Field(
        5, ge=1, le=MAX_STEPS, description="conjugate-gradient steps N (at most; neumann: terms)"
    )
    cg_tol: float | None = Field(
        None, gt=0, description="stop CG at this relative residual (None: always N steps)"
    )
    damping: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="solve ((1 + damping) I + H/lam) x = g: keeps CG stable when H is indefinite "
        "(the iMAML reference code uses cg_damping 1.0); 0 = the exact iMAML system",
    )
    hvp: HvpMode = Field("reverse", description=HVP_DESCRIPTION)
    solver: SolverName = added_later("cg", description=SOLVER_DESCRIPTION)
    neumann_alpha: float | None = added_later(
        None,
        gt=0,
        allow_inf_nan=False,
        description="step of the Neumann series (solver neumann; it converges for 0 < step < "
        "2 / largest eigenvalue of the system); None: inner_lr * lam (the proximal step's own "
        "contraction), "
        "stable whenever the inner steps are",
    )

    @model_validator(mode="after")
    def _stable_proximal_steps(self) -> ImamlParams:
        _solver_options(self)
        if self.inner_lr * self.lam >= 2:
            raise ValueError(
                f"inner_lr * lam = {self.inner_lr * self.lam:g} >= 2: the proximal steps diverge "
                "(each step multiplies phi - theta by 1 - inner_lr * lam); lower inner_lr or lam"
            )
        return self


class MrmlParams(ExecutionParams):
    """Parameters of ``mrml``."""

    inner_steps: int = Field(
        20, ge=0, le=MAX_STEPS, description="lower-level gradient steps K on the head"
    )
    inner_lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="lower-level step size")
    cg_steps: int = Field(
        20, ge=0, le=MAX_STEPS, description="conjugate-gradient steps N (neumann: terms)"
    )
    cg_tol: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="stop CG once the relative residual is <= cg_tol (None: always N steps, "
        "no host synchronisation)",
    )
    l2: float = Field(
        0.01,
        ge=0,
        allow_inf_nan=False,
        description="(l2/2)||phi||^2 in the lower level; > 0 makes it strongly convex",
    )
    warm_start: bool = Field(
        False,
        description="start each batch slot's head and CG solution from the previous "
        "meta-iteration's (paper pseudo-code); False: fixed head init and v = 0 (paper code)",
    )
    hvp: HvpMode = Field("reverse", description=HVP_DESCRIPTION)
    solver: SolverName = added_later("cg", description=SOLVER_DESCRIPTION)
    neumann_alpha: float | None = added_later(
        None,
        gt=0,
        allow_inf_nan=False,
        description="step of the Neumann series (solver neumann; it converges for 0 < step < "
        "2 / largest eigenvalue of the system); None: inner_lr (the lower-level step's own "
        "contraction), "
        "stable whenever the inner steps are",
    )

    # train.compile modes this learner runs (memcomp/config/compiling.py): its head steps and solve
    # are captured / compiled; they need no derivative, the one backward stays eager
    compile_modes: ClassVar[tuple[str, ...]] = ("graphs", "inductor")

    @model_validator(mode="after")
    def _solver_options(self) -> MrmlParams:
        _solver_options(self)
        return self

    def compile_problem(self, mode: str) -> str | None:
        """Why these parameters cannot run compiled (None: they can)."""
        if self.cg_tol is not None:
            return (
                "cg_tol stops the solve by reading its residual on the host every step, which a "
                "captured or compiled solve cannot do: drop cg_tol or set compile: none"
            )
        if self.hvp == "forward":
            return "hvp: forward (torch.func.jvp) is not tested compiled: use hvp: reverse"
        return None
