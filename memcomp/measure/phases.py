"""Named phases of a meta-iteration, marked by the learners, measured by whichever meter is active.

A learner writes ``with phase("inner"):``; when no meter is active (the default) this does nothing.
A meter activates itself with ``with active_meter(meter.phase):`` while it measures; the marker is
a :class:`contextvars.ContextVar`, so threads and nested activations each see their own meter.
Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar

PhaseFn = Callable[[str], AbstractContextManager[None]]

_ACTIVE: ContextVar[PhaseFn | None] = ContextVar("memcomp_phase", default=None)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark the enclosed work as phase ``name`` for the active meter (a no-op when none)."""
    hook = _ACTIVE.get()
    if hook is None:
        yield
        return
    with hook(name):
        yield


@contextlib.contextmanager
def active_meter(hook: PhaseFn) -> Iterator[None]:
    """Forward every :func:`phase` entered in this context to ``hook`` (e.g. ``meter.phase``)."""
    token = _ACTIVE.set(hook)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
