"""The cell child process, and test/extension plugins.

A cell child is ``python -m memcomp.exec.child``: it reads one JSON request on stdin (the cell, the
device, options), runs :func:`memcomp.engine.run_cell` and writes JSON lines on a private copy of
its stdout (``started``, ``iter`` for progress, then ``done`` with the outcome). Anything the cell
itself prints goes to stderr, which the parent keeps (its tail explains a crash). A child that dies
without a ``done`` line (segfault, ``os._exit``, killed by the kernel) becomes a row with
``status=error`` and its exit code or signal; CUDA out-of-memory is ``status=oom`` (the runner
maps it). A child whose parent dies (even by ``kill -9``) stops within a fraction of a second.
The parent side is :mod:`memcomp.exec.processes`. Each child has a fresh CUDA context, so one
cell's cached memory cannot inflate the next cell's peak.

Plugins (:mod:`memcomp.plugins`): the request names every plugin module the parent imported by
name (``--plugin``, a suite's ``plugins:``, ``$MEMCOMP_PLUGINS``); the child imports them before
reading the cell, and installed entry-point plugins are found by the registries themselves.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from memcomp.config.cells import from_json as cell_from_json  # THE cell serialisation
from memcomp.config.cells import to_json as cell_to_json

PLUGINS_ENV = "MEMCOMP_PLUGINS"  # = memcomp.plugins.ENV
__all__ = ["cell_from_json", "cell_to_json", "child_main", "load_plugins", "plugin_names"]

PARENT_ENV = "MEMCOMP_PARENT_PID"  # the parent, as the parent saw itself


def plugin_names() -> list[str]:
    """Modules a cell child must import: ``$MEMCOMP_PLUGINS`` and every plugin this process
    imported by name (``--plugin``, a suite's ``plugins:``); see :mod:`memcomp.plugins`."""
    from memcomp import plugins

    return list(dict.fromkeys([*plugins.env_modules(), *plugins.loaded()]))


def load_plugins(names: list[str] | None = None) -> list[str]:
    """Import plugin modules (default: ``$MEMCOMP_PLUGINS``); a failing import is an InputError
    naming the module and the import error."""
    from memcomp import plugins

    return plugins.load_env() if names is None else plugins.load(names, "plugins")


# ----------------------------------------------------------------------------- memory limit


def apply_memory_limit(device: Any, limit_mb: float | None) -> str | None:
    """Cap this process's CUDA memory at ``limit_mb`` (a per-process memory fraction of the device
    ``device`` names, the current one for a bare ``cuda``); returns a note when it does not
    apply."""
    import torch

    if limit_mb is None:
        return None
    if device.type != "cuda":
        return f"--memory-limit {limit_mb:g} MB ignored on {device.type} (CUDA only)"
    from memcomp.measure.budget import cuda_index, set_memory_limit

    index = cuda_index(device)  # torch.device("cuda") has no index: the current device
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = min(1.0, limit_mb * 2**20 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    set_memory_limit(limit_mb)  # execution: auto plans its task chunks inside the cap
    return None


# ----------------------------------------------------------------------------- child side


ORPHAN_EXIT = 3
ORPHAN_POLL_S = 0.2


def _die_with_parent(parent: int) -> None:
    """Stop this child when its parent dies (e.g. ``kill -9``): on Linux the kernel sends SIGKILL
    (PR_SET_PDEATHSIG); everywhere a watchdog thread notices the new parent process id, also
    while the cell is loading data or measuring memory (no progress is sent then)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the request above took effect
        os._exit(ORPHAN_EXIT)

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_POLL_S)
            if os.getppid() != parent:
                os._exit(ORPHAN_EXIT)

    threading.Thread(target=watch, name="memcomp-orphan-watchdog", daemon=True).start()


def _emitter(out: IO[str], parent: int) -> Any:
    """Progress events to the parent as JSON lines (:meth:`ProgressEvent.wire`)."""
    from memcomp.exec.progress import ProgressEvent

    def emit(event: ProgressEvent) -> None:
        if event.kind == "iteration" and os.getppid() != parent:  # orphaned: nobody will read
            os._exit(ORPHAN_EXIT)
        _send(out, event.wire())

    return emit


def _send(out: IO[str], msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg, default=str) + "\n")
    out.flush()


def child_main() -> None:
    """Entry point of a cell child (``python -m memcomp.exec.child``)."""
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    faulthandler.enable()  # a segfault leaves a Python traceback in the cell's log
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints of the cell go to stderr, not into the protocol
    request = json.loads(sys.stdin.read())
    load_plugins(request.get("plugins", []))

    import torch

    from memcomp.engine import run_cell
    from memcomp.exec.progress import CellProgress

    cell = cell_from_json(request["cell"])
    device = torch.device(request["device"])
    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))
    apply_memory_limit(device, request.get("memory_limit_mb"))
    checkpoint = Path(request["checkpoint"]) if request.get("checkpoint") else None
    outcome = run_cell(
        cell,
        device,
        CellProgress(_emitter(out, parent), cell),
        memory_source=request.get("memory_source", "auto"),
        checkpoint=checkpoint,
    )
    _send(out, {"event": "done", "row": outcome.row, "curve": outcome.curve,
                "episodes": outcome.episodes})  # fmt: skip
    out.close()
    sys.stderr.flush()
    os._exit(0)  # the result is delivered: skip the slow interpreter/torch teardown


if __name__ == "__main__":
    child_main()
