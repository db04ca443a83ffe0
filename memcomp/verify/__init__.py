"""``memcomp verify``: "gradcheck for meta-learners", the contract of docs/extending.md run
against any registered learner (built-in or plugin) on tiny float64 models on the CPU.

    from memcomp.verify import verify
    checks = verify("mrml")                 # list of Check (name, status, error, note)
    assert not any(c.failed for c in checks)

``factory`` checks another class under a registered name's parameters (the tests plant bugs in
small subclasses of the built-ins this way).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import torch

from memcomp.verify.checks import CHECKS, Check, Subject
from memcomp.verify.fixtures import Factory

__all__ = ["CHECKS", "Check", "Subject", "verify"]


def run_check(check: Callable[[Subject], Check], subject: Subject) -> Check:
    """One check; an exception is a failure naming it (and where it was raised)."""
    title = (check.__doc__ or check.__name__).strip().splitlines()[0]
    try:
        return check(subject)
    except Exception as e:  # noqa: BLE001 - a crashing learner fails the check, with the reason
        frame = traceback.extract_tb(e.__traceback__)[-1]
        where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
        return Check(check.__name__.removeprefix("check_").replace("_", " "), "FAIL",
                     note=f"{type(e).__name__}: {e}{where}"[:300] or title)  # fmt: skip


def verify(name: str, factory: Factory | None = None, threads: int | None = 1) -> list[Check]:
    """Run every check on learner ``name`` (or ``factory`` under ``name``'s parameters)."""
    subject = Subject(name, factory)
    subject.cls  # noqa: B018 - an unknown name fails here, before any check
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # bitwise determinism and speed on tiny models
    try:
        return [run_check(c, subject) for c in CHECKS]
    finally:
        torch.set_num_threads(old)
