"""The unit of work every executor ships: one cell from its JSON request, run in a fresh child.

:func:`run_cell_request` is what a Ray task or a SLURM job calls on the machine that runs the
cell. It starts ``python -m memcomp.exec.child`` exactly as a local run does (fresh process and CUDA
context, plugins imported, stderr kept), forwards its progress messages to ``on_event`` and returns
plain JSON data: the results row, curve, episodes and the child's log, so that the driver can write
the results folder as a local run would, with no shared filesystem.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from queue import Empty, Queue
from typing import Any

from memcomp.exec.child import cell_from_json, load_plugins
from memcomp.exec.processes import exit_description, finish_child, start_child

STOP_POLL_S = 1.0  # how often a running cell asks ``should_stop``


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_cell_request(
    request: dict[str, Any],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the cell of ``request`` (a child request with its ``cell`` as JSON) in a child process.

    Returns ``{"row", "curve", "episodes", "log", "host", "started_at", "exit_code", "stopped"}``;
    ``row`` is None when the child died before reporting (``log`` and ``exit_code`` say how).
    ``should_stop`` is asked before the child starts and about every :data:`STOP_POLL_S` seconds:
    when it says yes the child is killed and the result has ``stopped`` True (a cooperative stop
    that needs no scheduler-side kill).
    """
    load_plugins(request.get("plugins", []))  # the cell's components are typed by registries
    cell = cell_from_json(request["cell"])
    child_request = {k: v for k, v in request.items() if k != "cell"}
    started_at = now()
    if should_stop is not None and should_stop():
        return _result({}, "", None, "stopped before it started", started_at, stopped=True)
    events: Queue[tuple[int, str, Any]] = Queue()
    child = start_child(0, cell, child_request, events)
    stopped, next_check = False, time.monotonic() + STOP_POLL_S
    try:
        while True:
            try:
                _, kind, data = events.get(timeout=STOP_POLL_S)
            except Empty:
                kind, data = "", {}
            if should_stop is not None and not stopped and time.monotonic() >= next_check:
                next_check = time.monotonic() + STOP_POLL_S
                if should_stop():
                    child.proc.kill()  # its pipes close: "eof" follows
                    stopped = True
            if kind == "eof":
                break
            if not kind:
                continue
            if data.get("event") == "done":
                child.done = data
            elif on_event is not None:
                on_event(data)
    except BaseException:
        child.proc.kill()
        raise
    code = finish_child(child)
    return _result(
        child.done or {}, child.stderr_text(), code, exit_description(code), started_at, stopped
    )


def _result(
    done: dict[str, Any], log: str, code: int | None, how: str, started_at: str, stopped: bool
) -> dict[str, Any]:
    """What :func:`run_cell_request` returns, from the child's ``done`` message (if any)."""
    return {
        "row": done.get("row"),
        "curve": done.get("curve", []),
        "episodes": done.get("episodes", []),
        "log": log,
        "exit_code": code,
        "exit": how,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": started_at,
        "stopped": stopped,
    }


def request_base(device: Any, opts: Any, threads: int | None) -> dict[str, Any]:
    """What every remote cell's child request shares (``opts``: RunOptions)."""
    from memcomp.exec.child import plugin_names

    return {
        "device": "cuda" if device.type == "cuda" else "cpu",
        "memory_limit_mb": opts.memory_limit_mb,
        "memory_source": opts.memory_source,
        "plugins": plugin_names(),
        "threads": opts.threads or threads,
    }


def outcome_from_result(
    cell: Any, result: dict[str, Any], device: Any, extra: dict[str, Any] | None = None
) -> Any:
    """The :class:`~memcomp.engine.CellOutcome` of a returned result (THE dead-child error row
    when the child died without reporting), with the executor's columns ``extra`` added."""
    from memcomp.engine import CellOutcome
    from memcomp.exec.executor import dead_child_outcome

    if result.get("row") is not None:
        outcome = CellOutcome(dict(result["row"]), result["curve"], result["episodes"])
    else:
        how = str(result.get("exit", "did not report"))
        outcome = dead_child_outcome(cell, device, how, str(result.get("log", "")),
                                     result.get("exit_code"))  # fmt: skip
    outcome.row.update(extra or {})
    return outcome


def failed_outcome(cell: Any, device: Any, error: str, extra: dict[str, Any]) -> Any:
    """An error row for a cell whose executor gave up on it (e.g. its node died too often)."""
    from memcomp.exec.executor import error_outcome

    return error_outcome(cell, device, error, **extra)


def node_summary(rows: list[dict[str, Any]]) -> str:
    """``node A: 3 ok, 1 retried; node B: 2 ok`` for the rows of a cluster run."""
    per: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = per.setdefault(str(row.get("node") or "?"), {})
        status = str(row.get("status"))
        counts[status] = counts.get(status, 0) + 1
        if int(row.get("attempts") or 1) > 1:
            counts["retried"] = counts.get("retried", 0) + 1
    return "; ".join(
        f"node {node}: " + ", ".join(f"{n} {what}" for what, n in sorted(c.items()))
        for node, c in sorted(per.items())
    )
