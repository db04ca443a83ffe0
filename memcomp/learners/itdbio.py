"""ITD-BiO (Ji, Yang & Liang 2021), as the paper's baseline: iterative differentiation of the head.

Per task the head starts from a FIXED random initialisation (frozen, never meta-learned) and takes
K gradient steps on ``g = support CE + (l2/2)||(W, b)||^2``; the query cross-entropy at the adapted
head is back-propagated through the K steps into the backbone only.

The regulariser is the squared form ``(l2/2)||phi||^2`` (strongly convex, like ``mrml``). The
paper's released code instead added ``1e-4 * sum of the non-squared L2 norms`` of the head
parameters; the default ``l2=1e-4`` keeps its size, not its exact form.

``features`` is as in ``anil``; the default ``per-step`` re-runs the backbone at every inner step,
which is what the paper ran (memory grows with K); ``once`` keeps one backbone graph.
"""

from __future__ import annotations

from pydantic import Field

from memcomp.learners import LEARNERS
from memcomp.learners.anil import Anil, AnilParams, FeatureMode


class ItdBioParams(AnilParams):
    """Parameters of ``itd-bio``."""

    inner_steps: int = Field(20, ge=0, le=100_000, description="inner gradient steps K on the head")
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


@LEARNERS.register(
    "itd-bio",
    "ITD-BiO: backprop through K head steps from a fixed head init into the backbone",
    ItdBioParams,
)
class ItdBio(Anil):
    """Fixed head initialisation; the meta-gradient reaches the backbone only."""

    meta_learns_head = False
    params: ItdBioParams
