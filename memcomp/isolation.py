"""Cells in their own processes, and test/extension plugins.

A cell child is ``python -m memcomp.isolation``: it reads one JSON request on stdin (the cell, the
device, options), runs :func:`memcomp.runner.run_cell` and writes JSON lines on a private copy of
its stdout (``started``, ``iter`` for progress, then ``done`` with the outcome). Anything the cell
itself prints goes to stderr, which the parent keeps (its tail explains a crash). A child that dies
without a ``done`` line (segfault, ``os._exit``, killed by the kernel) becomes a row with
``status=error`` and its exit code or signal; CUDA out-of-memory is ``status=oom`` (the runner
maps it). Each child has a fresh CUDA context, so one cell's cached memory cannot inflate the next
cell's peak.

Plugins: ``MEMCOMP_PLUGINS="pkg.mod1,pkg.mod2"`` names modules imported before a suite is loaded
(by ``memcomp run``) and in every cell child, so they can register extra learners, datasets or
backbones (the tests use it for learners that fail on purpose).
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import IO, Any

from memcomp.config.cells import Cell
from memcomp.config.cells import from_json as cell_from_json  # THE cell serialisation
from memcomp.config.cells import to_json as cell_to_json

PLUGINS_ENV = "MEMCOMP_PLUGINS"
STDERR_TAIL = 8000  # bytes of a child's stderr kept for the error message and the log


def plugin_names() -> list[str]:
    """Modules named by ``$MEMCOMP_PLUGINS`` (comma-separated)."""
    return [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]


def load_plugins(names: list[str] | None = None) -> list[str]:
    """Import plugin modules (default: ``$MEMCOMP_PLUGINS``); a failing import is an InputError."""
    from memcomp.errors import InputError

    names = plugin_names() if names is None else names
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - report any plugin failure as bad input
            raise InputError(
                f"{PLUGINS_ENV}: cannot import plugin {name!r}: {type(e).__name__}: {e}"
            ) from None
    return names


# ----------------------------------------------------------------------------- memory limit


def apply_memory_limit(device: Any, limit_mb: float | None) -> str | None:
    """Cap this process's CUDA memory at ``limit_mb``; returns a note when it does not apply."""
    import torch

    if limit_mb is None:
        return None
    if device.type != "cuda":
        return f"--memory-limit {limit_mb:g} MB ignored on {device.type} (CUDA only)"
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = min(1.0, limit_mb * 2**20 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return None


# ----------------------------------------------------------------------------- child side


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this child when its parent dies (e.g. ``kill -9``)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _ChildProgress:
    """Forwards the runner's progress to the parent as JSON lines."""

    def __init__(self, out: IO[str], parent: int) -> None:
        self.out, self.parent = out, parent

    def cell_started(self, cell: Cell, iterations: int) -> None:
        _send(self.out, {"event": "started", "iterations": iterations})

    def iteration_done(self, iteration: int, val_acc: float | None) -> None:
        if os.getppid() != self.parent:  # orphaned: nobody will read the result
            os._exit(3)
        _send(self.out, {"event": "iter", "it": iteration, "val": val_acc})


def _send(out: IO[str], msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg, default=str) + "\n")
    out.flush()


def child_main() -> None:
    """Entry point of a cell child (``python -m memcomp.isolation``)."""
    parent = os.getppid()
    faulthandler.enable()  # a segfault leaves a Python traceback in the cell's log
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints of the cell go to stderr, not into the protocol
    request = json.loads(sys.stdin.read())
    load_plugins(request.get("plugins", []))

    import torch

    from memcomp.runner import run_cell

    cell = cell_from_json(request["cell"])
    device = torch.device(request["device"])
    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))
    apply_memory_limit(device, request.get("memory_limit_mb"))
    checkpoint = Path(request["checkpoint"]) if request.get("checkpoint") else None
    outcome = run_cell(
        cell,
        device,
        _ChildProgress(out, parent),
        memory_source=request.get("memory_source", "auto"),
        checkpoint=checkpoint,
    )
    _send(out, {"event": "done", "row": outcome.row, "curve": outcome.curve,
                "episodes": outcome.episodes})  # fmt: skip
    out.close()
    sys.stderr.flush()
    os._exit(0)  # the result is delivered: skip the slow interpreter/torch teardown


# ----------------------------------------------------------------------------- parent side


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
    return env


def start_child(
    index: int,
    cell: Cell,
    request: dict[str, Any],
    events: Queue[tuple[int, str, Any]],
) -> ChildCell:
    """Start a child for ``cell``; its messages arrive on ``events`` as ``(index, kind, data)``
    with kind ``msg`` (a decoded JSON line) and finally ``eof``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcomp.isolation"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM (e.g. from a batch scheduler) stops the suite like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    child_main()
