"""The local executor: each cell in its own child process (:mod:`memcomp.exec.child`),
``jobs`` at once (or one per GPU slot, pinned); the children's JSON-line messages drive progress,
a child that dies becomes THE dead-child error row with its exit code or signal. With
``--isolation inline`` the local executor is :class:`memcomp.exec.inline.InlineExecutor`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import IO, Any

import torch

from memcomp.config.cells import Cell
from memcomp.config.run_options import RunOptions
from memcomp.engine import CellOutcome
from memcomp.exec.child import PARENT_ENV, cell_to_json, plugin_names
from memcomp.exec.executor import Executor, RunContext, dead_child_outcome
from memcomp.exec.options import checkpoint_path
from memcomp.exec.progress import Emit, ProgressEvent

STDERR_TAIL = 8000  # bytes of a child's stderr kept for the error message and the log


@dataclass
class ChildCell:
    """A running cell child: the process, its stderr tail and its final message."""

    index: int
    cell: Cell
    proc: subprocess.Popen[bytes]
    done: dict[str, Any] | None = None
    stderr: bytearray = field(default_factory=bytearray)
    threads: list[threading.Thread] = field(default_factory=list)

    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def child_env() -> dict[str, str]:
    """The child's environment: this one, with this process's import path."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[PARENT_ENV] = str(os.getpid())
    return env


def start_child(
    index: int,
    cell: Cell,
    request: dict[str, Any],
    events: Queue[tuple[int, str, Any]],
    env: dict[str, str] | None = None,
) -> ChildCell:
    """Start a child for ``cell``; its messages arrive on ``events`` as ``(index, kind, data)``
    with kind ``msg`` (a decoded JSON line) and finally ``eof``. ``env`` is added to the child's
    environment (e.g. ``CUDA_VISIBLE_DEVICES``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcomp.exec.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**child_env(), **(env or {})},
    )
    child = ChildCell(index, cell, proc)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps({**request, "cell": cell_to_json(cell)}).encode())
        proc.stdin.close()

    def read_out(stream: IO[bytes]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                events.put((index, "msg", json.loads(line)))
        events.put((index, "eof", None))

    def read_err(stream: IO[bytes]) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
            child.stderr.extend(chunk)
            del child.stderr[:-STDERR_TAIL]

    for target, stream in ((read_out, proc.stdout), (read_err, proc.stderr)):
        t = threading.Thread(target=target, args=(stream,), daemon=True)
        t.start()
        child.threads.append(t)
    return child


def exit_description(code: int | None) -> str:
    """``exit code 3`` or ``killed by signal SIGSEGV``."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = " (out of host memory?)" if -code == signal.SIGKILL else ""
        return f"killed by signal {name}{hint}"
    return f"exit code {code}"


def finish_child(child: ChildCell, timeout: float = 30.0) -> int | None:
    """Wait for the child's exit (killing it if it lingers) and its reader threads."""
    try:
        code = child.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        code = child.proc.wait()
    for t in child.threads:
        t.join(timeout=5)
    return code


def stop_children(children: list[ChildCell]) -> None:
    """Terminate running children (Ctrl-C); kill those that do not stop within a few seconds."""
    for c in children:
        with contextlib.suppress(OSError):
            c.proc.terminate()
    for c in children:
        try:
            c.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def local_executor(options: RunOptions) -> Executor:
    """The ``local`` executor: child processes, or inline with ``--isolation inline``."""
    if options.isolation == "inline":
        from memcomp.exec.inline import InlineExecutor

        return InlineExecutor(options)
    return ProcessesExecutor(options)


class ProcessesExecutor(Executor):
    """Each cell in a fresh child process, ``jobs`` (or one per GPU slot) at once."""

    def prepare(self, device: torch.device) -> RunOptions:
        """Pin cell children to GPUs on a CUDA run (``--gpus``, ``--cells-per-gpu``)."""
        from memcomp.exec.gpus import pinned

        self.options = pinned(self.options, device)
        return self.options

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        opts, device = self.options, ctx.device
        events: Queue[tuple[int, str, Any]] = Queue()
        pending = list(range(len(cells)))[::-1]
        running: dict[int, ChildCell] = {}
        base = {
            "device": str(device),
            "memory_limit_mb": opts.memory_limit_mb,
            "memory_source": opts.memory_source,
            "plugins": plugin_names(),
            "threads": opts.cell_threads(),
        }
        slots, gpu_of = opts.gpu_slots, {}
        try:
            while pending or running:
                while pending and len(running) < opts.slots():
                    i = pending.pop()
                    ckpt = checkpoint_path(ctx.results, cells[i])
                    request = {**base, "checkpoint": str(ckpt) if ckpt else None}
                    env = None
                    if slots is not None:  # pinned: the child sees only its GPU
                        gpu_of[i] = slots.acquire()
                        env = slots.env(gpu_of[i])
                    running[i] = start_child(i, cells[i], request, events, env)
                try:
                    i, kind, data = events.get(timeout=1.0)
                except Empty:
                    continue
                child = running.get(i)
                if child is None:
                    continue
                if kind == "msg":
                    _on_message(child, data, ctx.emit)
                    continue
                code = finish_child(child)
                del running[i]
                outcome = _child_outcome(child, code, device)
                if slots is not None:
                    slots.release(gpu_of[i])
                    outcome.row.update(slots.columns(gpu_of.pop(i)))
                ctx.record(i, outcome, child.stderr_text())
        except BaseException:
            stop_children(list(running.values()))
            raise


def _on_message(child: ChildCell, msg: dict[str, Any], emit: Emit) -> None:
    if msg.get("event") == "done":
        child.done = msg
        return
    event = ProgressEvent.from_wire(child.cell, msg)
    if event is not None:
        emit(event)


def _child_outcome(child: ChildCell, code: int | None, device: torch.device) -> CellOutcome:
    """The child's reported outcome, or THE dead-child error row."""
    if child.done is not None:
        d = child.done
        return CellOutcome(d["row"], d.get("curve", []), d.get("episodes", []))
    return dead_child_outcome(child.cell, device, exit_description(code), child.stderr_text(),
                              code)  # fmt: skip
