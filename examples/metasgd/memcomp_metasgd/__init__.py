"""Registers ``metasgd`` (imported by memcomp through this package's entry point; no torch)."""

from pydantic import Field

from memcomp.learners import LEARNERS
from memcomp.learners.params import MamlParams


class MetaSgdParams(MamlParams):
    """``inner_lr`` is the initial value of every learned per-parameter learning rate."""

    inner_lr: float = Field(0.4, gt=0, allow_inf_nan=False, description="initial inner lr")


LEARNERS.register_lazy(
    "metasgd",
    "Meta-SGD: MAML whose per-parameter inner learning rates are meta-learned (Li et al. 2017)",
    MetaSgdParams,
    "memcomp_metasgd.learner:MetaSgd",
)
