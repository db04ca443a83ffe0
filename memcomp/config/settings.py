"""Configuration models shared by suites, cells and the runner (pydantic, unknown keys rejected).

Upper bounds (``le=``) are stated here once: they keep a typo such as ``meta_batch: 1000000000``
from validating and then running forever; the JSON Schema and the messages come from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from memcomp.registry import MAX_STEPS

MAX_ITERATIONS = 10_000_000  # meta-iterations of one cell
MAX_TASKS = 100_000  # tasks per meta-iteration, episodes per evaluation


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(Strict):
    """An N-way K-shot setting with Q query images per class."""

    ways: int = Field(5, ge=2, le=10_000)
    shots: int = Field(1, ge=1, le=100_000)
    queries: int = Field(15, ge=1, le=100_000)


# ----------------------------------------------------------------------------- precision
# Arithmetic precision of a cell (docs/design.md section 10). Torch-free: the manifest, the rows
# and the cell id are built from it; memcomp/measure/precision.py applies it.
Precision = Literal["float32", "tf32", "bf16", "float64"]
PRECISIONS: tuple[str, ...] = ("float32", "tf32", "bf16", "float64")
PRECISION_DESCRIPTION = (
    "arithmetic: float32 (IEEE, TF32 off in cuBLAS and cuDNN), tf32 (float32 storage, TF32 "
    "matmuls and convolutions: CUDA only), bf16 (autocast bfloat16, float32 master weights and "
    "optimiser state), float64; unset: as `dtype`"
)
# precision -> (weights' dtype, TF32 in cuBLAS matmuls, TF32 in cuDNN, float32 matmul precision,
# autocast dtype)
PRECISION_MODES: dict[str, tuple[str, bool, bool, str, str]] = {
    "float32": ("float32", False, False, "highest", "none"),
    "tf32": ("float32", True, True, "high", "none"),
    "bf16": ("float32", False, False, "highest", "bfloat16"),
    "float64": ("float64", False, False, "highest", "none"),
}
# train keys that change how a cell's arithmetic runs; in the cell id only when not the default
PRECISION_KEYS = ("precision", "cudnn_benchmark", "cudnn_deterministic")


def _fill_dtype(data: Any) -> Any:
    """A mapping giving ``precision`` but no ``dtype`` gets its weights' dtype filled in, so a
    cell's train config always holds both, consistently (:func:`_dtype_agrees` checks them)."""
    if isinstance(data, dict) and data.get("precision") in PRECISION_MODES:
        if data.get("dtype") is None:
            return {**data, "dtype": PRECISION_MODES[data["precision"]][0]}
    return data


def _dtype_agrees(precision: Any, info: ValidationInfo) -> Any:
    """``dtype`` and ``precision`` given in one mapping must name the same weights' dtype."""
    dtype = info.data.get("dtype")
    if precision is not None and dtype is not None and PRECISION_MODES[precision][0] != dtype:
        raise PydanticCustomError(
            "precision_dtype",
            "contradicts dtype {dtype} (precision {precision} keeps weights in {storage}): drop "
            "dtype, precision replaces it",
            {"dtype": dtype, "precision": precision, "storage": PRECISION_MODES[precision][0]},
        )
    return precision


# ----------------------------------------------------------------------------- compile
# How a cell's launch-bound parts run (memcomp/engine/compiling.py). Only learners whose parameter
# model declares a mode in ``compile_modes`` accept it; the others are refused at expansion.
CompileMode = Literal["none", "graphs", "inductor"]
COMPILE_MODES: tuple[str, ...] = ("none", "graphs", "inductor")
COMPILE_DESCRIPTION = (
    "none (eager), graphs (CUDA-graph capture of the learner's inner loop and solve: CUDA only, a "
    "skipped cell elsewhere) or inductor (torch.compile of the same parts); only learners that "
    "declare it accept it (mrml): torch.compile cannot differentiate twice"
)


class PrecisionChecks(BaseModel):
    """The ``dtype`` / ``precision`` rule of train mappings (top level, parts, learner entries)."""

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        return _fill_dtype(data)

    @field_validator("precision", check_fields=False)
    @classmethod
    def _agree(cls, value: Any, info: ValidationInfo) -> Any:
        return _dtype_agrees(value, info)


class TrainConfig(PrecisionChecks, Strict):
    """Meta-training loop options."""

    iterations: int = Field(200, ge=1, le=MAX_ITERATIONS, description="outer (meta) iterations")
    meta_batch: int = Field(4, ge=1, le=MAX_TASKS, description="tasks per meta-iteration")
    eval_every: int = Field(25, ge=1, description="validate every this many iterations")
    val_episodes: int = Field(
        100, ge=1, le=MAX_TASKS, description="validation episodes per evaluation"
    )
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.001, gt=0, allow_inf_nan=False, description="outer learning rate")
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="weights' dtype (older key; `precision` replaces it)"
    )
    precision: Precision | None = Field(None, description=PRECISION_DESCRIPTION)
    cudnn_benchmark: bool = Field(
        False, description="torch.backends.cudnn.benchmark in the cell (torch's default: false)"
    )
    cudnn_deterministic: bool = Field(
        False,
        description="torch.backends.cudnn.deterministic in the cell (torch's default: false)",
    )
    compile: CompileMode = Field("none", description=COMPILE_DESCRIPTION)
    checkpoint_every: int | None = Field(
        None, ge=1, description="save a resumable checkpoint every this many iterations"
    )


class TestConfig(Strict):
    """Meta-test options."""

    __test__ = False  # not a pytest class

    episodes: int = Field(
        600, ge=1, le=MAX_TASKS, description="fixed test episodes (>= 600 for papers)"
    )
    protocol: Literal["native", "head-finetune"] = "native"
    finetune_steps: int = Field(20, ge=0, le=MAX_STEPS, description="head-finetune: head GD steps")
    finetune_lr: float = Field(0.05, gt=0, allow_inf_nan=False, description="head-finetune lr")


def overrides(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional: the keys given are merged over a full config.

    Each given value is checked by the same field constraints, so merging the given keys over a
    valid config gives a valid config without validating it again.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann: Any = info.annotation
        copy = Field(None, description=info.description or "", json_schema_extra=None)
        copy.metadata = list(info.metadata)
        fields[name] = (ann, copy)  # default None, but an explicit null is checked
    return create_model(f"{model.__name__}Overrides", __base__=Strict, **fields)


class TrainConfigOverrides(PrecisionChecks, overrides(TrainConfig)):  # type: ignore[misc]
    """:class:`TrainConfig` keys given in a part or a learner entry."""


TrainOverrides = TrainConfigOverrides
TestOverrides = overrides(TestConfig)


def merged(base: BaseModel, over: BaseModel | None) -> Any:
    """``base`` with the keys given in ``over`` (an overrides model) replaced.

    Of ``dtype`` and ``precision`` the more specific one wins: an override giving ``dtype`` alone
    clears the precision it would otherwise inherit (one giving ``precision`` also holds the
    matching ``dtype``, filled in by validation).
    """
    if over is None:
        return base
    update = over.model_dump(exclude_unset=True)
    if "dtype" in update and "precision" not in update and hasattr(base, "precision"):
        update["precision"] = None
    return base.model_copy(update=update)


def precision_of(train: TrainConfig) -> str:
    """The precision a cell runs in: ``precision``, else ``dtype`` (suites before the key)."""
    return train.precision or train.dtype


def storage_dtype(train: TrainConfig) -> str:
    """The weights' dtype (``float32`` or ``float64``) of a cell's precision."""
    return PRECISION_MODES[precision_of(train)][0]


def planned_flags(train: TrainConfig) -> dict[str, Any]:
    """The precision columns a cell with ``train`` sets (the row records what was in force)."""
    storage, mm, cudnn, mm_precision, autocast = PRECISION_MODES[precision_of(train)]
    return {
        "precision": precision_of(train), "dtype": storage, "matmul_tf32": mm,
        "cudnn_tf32": cudnn, "float32_matmul_precision": mm_precision,
        "cudnn_benchmark": train.cudnn_benchmark,
        "cudnn_deterministic": train.cudnn_deterministic, "autocast_dtype": autocast,
    }  # fmt: skip


def train_identity(train: TrainConfig) -> dict[str, Any]:
    """The train keys a cell id hashes: ``checkpoint_every`` left out (it changes how a cell
    runs, not what it computes); the precision as weights' ``dtype`` plus ``precision`` only for
    tf32/bf16, and the cuDNN flags only when not torch's defaults, so suites written before
    these keys keep their ids and ``precision: float64`` is ``dtype: float64``; ``compile``
    only when not ``none`` (the same meta-gradient, another cell: its time differs)."""
    out = train.model_dump(exclude={"checkpoint_every", *PRECISION_KEYS})
    out["dtype"] = storage_dtype(train)
    if precision_of(train) in ("tf32", "bf16"):
        out["precision"] = precision_of(train)
    for key in ("cudnn_benchmark", "cudnn_deterministic"):
        if getattr(train, key):
            out[key] = True
    if train.compile == "none":  # added later: suites written before it keep their ids
        del out["compile"]
    return out
