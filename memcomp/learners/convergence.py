"""When a meta-gradient cannot be trusted: CG divergence, read from a learner's StepStats.

Fixed-iteration CG on a singular or indefinite system (``mrml l2: 0`` with few shots: the head
Hessian of softmax cross-entropy is singular) grows geometrically and hands the optimiser a
meta-gradient of norm 1e14 while the loss stays finite. :func:`divergence_reason` names the two
symptoms; the runner stops such a cell with ``status=diverged`` and the reason:

* the relative residual ``||A v - b|| / ||b||`` above :data:`RESIDUAL_LIMIT` (100, not 1: CG's
  residual is not monotone, and truncated CG on a well-posed system passes 1 on its way: on
  the test model, 3 CG steps with ``l2 = 0.01`` left residuals 2.1-4.6 and a fine
  meta-gradient, while a singular system reached 1e16 within 10 steps);
* the CG curvature ratio (smallest over largest Rayleigh quotient ``p'Ap / p'p`` seen, see
  :class:`memcomp.numerics.cg.CGResult`) within :data:`CURVATURE_LIMIT` of 0: ``p'Ap``
  collapsed, ``A`` is (numerically) singular along a search direction. A clearly negative ratio
  (an indefinite ``I + H/lam`` in iMAML with BatchNorm: -0.6 in the smoke suite) is not counted:
  CG may still make progress there, and the residual limit catches it when it does not.
"""

from __future__ import annotations

import math
from typing import Any

RESIDUAL_LIMIT = 100.0
CURVATURE_LIMIT = 1e-12
FIX = "make the lower level strongly convex: raise l2 (mrml) or lam / damping (imaml)"


def divergence_reason(stats: Any) -> str | None:
    """Why ``stats`` (a :class:`~memcomp.learners.driver.StepStats`) shows CG diverging, or None.

    Reads one or two scalars back to the host.
    """
    residual = getattr(stats, "cg_residual", None)
    if residual is not None:
        r = float(residual)
        if not math.isfinite(r) or r > RESIDUAL_LIMIT:
            return f"CG diverged: relative residual {r:.3g} > {RESIDUAL_LIMIT:g}; {FIX}"
    curvature = getattr(stats, "cg_curvature", None)
    if curvature is not None:
        c = float(curvature)
        if not abs(c) > CURVATURE_LIMIT:
            return (
                f"CG curvature collapsed: min/max p'Ap/p'p = {c:.3g}, within {CURVATURE_LIMIT:g} "
                f"of 0 (singular system); {FIX}"
            )
    return None
