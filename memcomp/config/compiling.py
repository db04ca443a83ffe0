"""Which learners accept ``train.compile`` (torch-free: checked when a suite is expanded).

A learner accepts a compile mode only if its parameter model declares it in the class attribute
``compile_modes`` (``mrml``: graphs and inductor) and its parameters allow it
(``compile_problem(mode)`` on the model, e.g. ``cg_tol`` reads the residual on the host, which a
captured or compiled solve cannot). Everything else is refused with a message naming the learner
and the option: never a silent eager fallback.
"""

from __future__ import annotations

from typing import Any

from memcomp.config.registries import registry


def supporting(mode: str) -> list[str]:
    """Names of the registered learners whose parameter model declares ``mode``."""
    return [e.name for e in registry("learner") if mode in getattr(e.params, "compile_modes", ())]


def compile_problem(learner: str, model: Any, mode: str) -> str | None:
    """Why ``learner`` with parameters ``model`` cannot run ``compile: mode`` (None: it can)."""
    if mode == "none":
        return None
    if mode not in getattr(type(model), "compile_modes", ()):
        others = ", ".join(supporting(mode)) or "none"
        return (
            f"learner {learner} does not support compile: {mode} (learners that do: {others}); "
            "second-order and Hessian-vector-product learners need double backward, which "
            "torch.compile cannot do, and the others are not tested compiled: set compile: none "
            f"for {learner} (train: {{compile: none}} in its learner entry)"
        )
    check = getattr(model, "compile_problem", None)
    why = check(mode) if callable(check) else None
    return f"learner {learner} with compile: {mode}: {why}" if why else None
