"""Cells as Ray tasks on an existing Ray cluster (``memcomp run --executor ray``).

Each cell is one task asking for one GPU (or ``cpus_per_cell`` CPUs for a CPU cell) that runs
:func:`memcomp.exec.remote.run_cell_request` on whichever node Ray picks: a fresh child process,
as locally. The row, curve, episodes and log come back to the driver, which writes the results
folder exactly as a local run does, so no shared filesystem is needed. A task whose worker or node
dies is submitted again (``max_retries`` times); each row records its ``attempts``, the
``retry_reasons`` and the ``node`` it finished on.

Ctrl-C stops the tasks in flight without ``ray.cancel`` (which can abort the driver inside Ray
when a task's reply is on its way): the driver raises a stop flag on its progress board, each task
polls it about once a second from a thread of its own and kills its cell child; tasks still running
after :data:`STOP_WAIT_S` end with the driver's Ray job (docs/design.md section 9).

Code: memcomp (and any ``$MEMCOMP_PLUGINS`` module) must be importable on every node (installed
there, or shipped with ``runtime_env``, e.g. ``{"py_modules": ["/path/to/plugin_pkg"]}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from memcomp.config.cells import Cell
from memcomp.config.executors import RayOptions
from memcomp.exec.executor import Executor, RunContext
from memcomp.exec.progress import Emit, ProgressEvent
from memcomp.exec.remote import STOP_POLL_S, failed_outcome, node_summary, outcome_from_result

STOP_WAIT_S = 20.0  # how long Ctrl-C waits for the tasks to see the stop flag and return


def ray_missing() -> str | None:
    """Why Ray cannot be used here (None when it can)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "--executor ray needs Ray: pip install 'memcomp[cluster]' (or pip install ray)"
    return None


class _Board:
    """A tiny actor on the driver's node: tasks post progress, the driver takes it."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.stop = False

    def post(self, index: int, event: dict[str, Any]) -> None:
        self.events.append((index, event))

    def take(self) -> list[tuple[int, dict[str, Any]]]:
        events, self.events = self.events, []
        return events

    def request_stop(self) -> None:
        self.stop = True

    def stopping(self) -> bool:
        return self.stop


def _cell_task(index: int, request: dict[str, Any], board: Any) -> dict[str, Any]:
    """Body of a Ray task: run the cell, reporting progress to the driver's board."""
    import ray

    from memcomp.exec.remote import run_cell_request

    ctx = ray.get_runtime_context()
    node = f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:8]}"
    board.post.remote(index, {"event": "node", "node": node})
    with _StopWatch(board) as watch:
        result = run_cell_request(request, lambda ev: board.post.remote(index, ev), watch.is_set)
    result["node"] = node
    return result


class _StopWatch:
    """Asks the board for the stop flag about once a second, from a thread of its own: a task
    blocked in ``ray.get`` on its main thread lends its CPUs to the node, which then starts another
    cell beside it (docs/design.md section 9)."""

    def __init__(self, board: Any) -> None:
        import threading

        self.board, self.stop, self.done = board, threading.Event(), threading.Event()
        self.asked = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="memcomp-stop-watch", daemon=True)

    def _watch(self) -> None:
        import ray

        while True:
            try:
                if ray.get(self.board.stopping.remote(), timeout=10):
                    self.stop.set()
            except Exception:  # noqa: BLE001 - board lost: the driver's job end stops us
                pass
            self.asked.set()
            if self.stop.is_set() or self.done.wait(STOP_POLL_S):
                return

    def is_set(self) -> bool:
        return self.stop.is_set()

    def __enter__(self) -> _StopWatch:
        self.thread.start()
        self.asked.wait(10)  # the first answer, so that a task queued before Ctrl-C starts nothing
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()  # Ray reuses the worker process: the thread must end with the task
        self.thread.join(timeout=15)


def is_node_failure(error: BaseException) -> bool:
    """Whether a Ray error means the task's worker or node was lost (worth running again)."""
    import ray.exceptions as rex

    if isinstance(error, rex.RayTaskError):  # the task's own code raised: running again won't help
        return False
    return isinstance(error, rex.RayError)


def run_ray(
    cells: Sequence[Any],
    device: Any,
    requests: Sequence[dict[str, Any]],
    record: Callable[..., None],
    settings: RayOptions,
    emit: Emit,
) -> None:
    """Run ``cells`` (child ``requests``, one per cell) as Ray tasks; ``record(i, outcome, log)``
    is called in the driver as each finishes. Ctrl-C stops what is in flight (see the module
    docstring) and re-raises."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=settings.address, logging_level="ERROR", log_to_driver=False,
            runtime_env=settings.runtime_env or None,
        )  # fmt: skip
    board = _new_board()
    gpu = device.type == "cuda"
    task = ray.remote(_cell_task).options(
        num_cpus=0 if gpu else settings.cpus_per_cell, num_gpus=1 if gpu else 0, max_retries=0
    )
    inflight: dict[Any, int] = {}
    attempts = [0] * len(cells)
    reasons: list[list[str]] = [[] for _ in cells]
    nodes: dict[int, str] = {}

    def submit(i: int) -> None:
        attempts[i] += 1
        inflight[task.remote(i, requests[i], board)] = i

    def extra(i: int) -> dict[str, Any]:
        return {
            "executor": "ray", "node": nodes.get(i, ""), "attempts": attempts[i],
            "retry_reasons": json.dumps(reasons[i]) if reasons[i] else "",
        }  # fmt: skip

    try:
        for i in range(len(cells)):
            submit(i)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            try:
                _forward(ray.get(board.take.remote(), timeout=30), cells, nodes, emit)
            except Exception:  # noqa: BLE001 - the board's node died: progress only is lost
                board = _new_board()
            for ref in ready:
                i = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - classified below
                    if not is_node_failure(e):
                        message = f"Ray task failed: {type(e).__name__}: {str(e)[-300:]}"
                        record(i, failed_outcome(cells[i], device, message, extra(i)), str(e))
                        continue
                    reasons[i].append(f"attempt {attempts[i]} on {nodes.get(i, '?')}: "
                                      f"{type(e).__name__}")  # fmt: skip
                    if attempts[i] <= settings.max_retries:
                        submit(i)
                        continue
                    message = f"its Ray worker died {attempts[i]} times (max_retries exhausted)"
                    record(i, failed_outcome(cells[i], device, message, extra(i)), str(e))
                    continue
                nodes[i] = result.get("node", nodes.get(i, ""))
                record(i, outcome_from_result(cells[i], result, device, extra(i)), result["log"])
    except BaseException:
        _stop(board, list(inflight))
        raise
    finally:
        if started_here:
            ray.shutdown()


def _stop(board: Any, refs: list[Any]) -> None:
    """Ask every task to stop (the board's flag) and wait up to :data:`STOP_WAIT_S` for them."""
    import ray

    if not refs:
        return
    try:
        ray.get(board.request_stop.remote(), timeout=10)
    except Exception:  # noqa: BLE001 - board lost: the job's end (ray.shutdown) stops the tasks
        return
    ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S)


def _new_board() -> Any:
    """The progress board, on the head node (which outlives worker nodes) when there is one."""
    import ray

    head = "node:__internal_head__"
    on_head = any(n.get("Alive") and head in n.get("Resources", {}) for n in ray.nodes())
    resources = {head: 0.001} if on_head else {}
    return ray.remote(_Board).options(num_cpus=0, resources=resources).remote()


def _forward(
    events: list[tuple[int, dict[str, Any]]], cells: Sequence[Any], nodes: dict[int, str],
    emit: Emit,
) -> None:  # fmt: skip
    for i, ev in events:
        if ev.get("event") == "node":
            nodes[i] = str(ev["node"])
            continue
        event = ProgressEvent.from_wire(cells[i], ev)
        if event is not None:
            emit(event)


class RayExecutor(Executor):
    """Cells as Ray tasks on an existing cluster (see the module docstring)."""

    remote = True

    def missing(self) -> str | None:
        return ray_missing()

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        from memcomp.exec.child import cell_to_json
        from memcomp.exec.remote import request_base

        assert self.options.executor_options is not None
        settings: RayOptions = self.options.executor_options.section("ray")
        base = request_base(ctx.device, self.options, max(1, int(settings.cpus_per_cell)))
        base["checkpoint"] = None  # no shared filesystem: a re-run cell starts over
        requests = [{**base, "cell": cell_to_json(c)} for c in cells]
        run_ray(cells, ctx.device, requests, ctx.record, settings, ctx.emit)

    def summary(self, rows: list[dict[str, Any]]) -> str | None:
        return node_summary(rows) if rows else None
