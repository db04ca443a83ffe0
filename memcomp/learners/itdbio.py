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

from memcomp.learners.anil import Anil
from memcomp.learners.params import ItdBioParams


class ItdBio(Anil):
    """Fixed head initialisation; the meta-gradient reaches the backbone only."""

    meta_learns_head = False
    test_params = {"inner_steps": 3, "inner_lr": 0.5, "l2": 0.1}
    params: ItdBioParams
