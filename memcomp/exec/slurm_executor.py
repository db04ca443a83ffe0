"""Cells as SLURM jobs through submitit (``memcomp run --executor slurm``).

One job array per set of resources (per-learner overrides make several), at most
``array_parallelism`` cells of an array running at once. Every job runs one cell with
:func:`memcomp.exec.remote.run_cell_request` (a fresh child process, as locally) and writes its
row, curve, episodes and log into the results folder itself, which must therefore be on a
filesystem shared with the nodes, under a lock (``.lock`` in the folder): so ``--no-wait``
returns after submission and the folder fills up as jobs end. Cells checkpoint to
``checkpoints/<cell>.pt`` (``train.checkpoint_every``); a job requeued after preemption or a
timeout (by submitit, or ``scontrol requeue``) continues from there, and its row records
``slurm_restarts``. ``slurm_jobs.json`` maps cells to job ids for ``memcomp status`` and for
``--resume``, which neither resubmits a cell whose job is still queued or running nor loses a
finished one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from memcomp.config.cells import Cell
from memcomp.exec.executor import Executor, RunContext
from memcomp.exec.progress import Emit, ProgressEvent
from memcomp.exec.remote import failed_outcome, node_summary, outcome_from_result

JOBS_FILE = "slurm_jobs.json"
# Neither accounting nor the controller knows the job: e.g. an array task cancelled before it
# started leaves no record at all.
VANISHED = "VANISHED"
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING",
               "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED"}  # fmt: skip


def slurm_missing() -> str | None:
    """Why SLURM cannot be used from here (None when it can)."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "--executor slurm needs submitit: pip install 'memcomp[cluster]'"
    return None


@contextlib.contextmanager
def results_lock(folder: Path) -> Iterator[None]:
    """Exclusive lock on a results folder shared by jobs writing their rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _job_columns(result: dict[str, Any] | None = None) -> dict[str, Any]:
    env = os.environ
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else env.get("SLURM_JOB_ID", "")
    restarts = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
    return {"executor": "slurm", "slurm_job_id": job, "slurm_restarts": restarts,
            "attempts": restarts + 1, "node": (result or {}).get("host", "")}  # fmt: skip


try:  # the job body is Checkpointable so that submitit requeues it on timeout/preemption
    from submitit.helpers import Checkpointable as _Base
except ImportError:  # pragma: no cover - without submitit the class is never submitted
    _Base = object  # type: ignore[assignment,misc]


class SlurmCellJob(_Base):  # type: ignore[misc,valid-type]
    """The body of one SLURM job: run a cell, write it into the shared results folder."""

    def __init__(self, results: str, device: str) -> None:
        self.results, self.device = results, device

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        import torch

        from memcomp.exec.child import cell_from_json, load_plugins
        from memcomp.exec.options import save_outcome
        from memcomp.exec.remote import run_cell_request
        from memcomp.results.store import ResultsDir

        load_plugins(request.get("plugins", []))  # the cell's components are typed by registries
        cell = cell_from_json(request["cell"])
        result = run_cell_request(request)
        if result["row"] is None and result["exit_code"] == -signal.SIGTERM:
            # SLURM is stopping the job (requeue, preemption, scancel): no error row; a
            # requeued job continues from the cell's checkpoint
            raise RuntimeError(f"cell {cell.id} stopped by SIGTERM")
        outcome = outcome_from_result(cell, result, torch.device(self.device), _job_columns(result))
        folder = Path(self.results)
        with results_lock(folder):
            save_outcome(ResultsDir(folder), cell, outcome, result["log"])
        return {"row": outcome.row, "curve": outcome.curve, "episodes": outcome.episodes,
                "log": result["log"]}  # fmt: skip


def read_jobs(folder: Path) -> dict[str, str]:
    path = folder / JOBS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_jobs(folder: Path, jobs: dict[str, str]) -> None:
    from memcomp.fsutil import atomic_write_text

    atomic_write_text(folder / JOBS_FILE, json.dumps(jobs, indent=1, sort_keys=True))


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM states of ``job_ids`` (``123_4`` array tasks included), from sacct."""
    import subprocess

    if not job_ids:
        return {}
    try:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted(set(job_ids)))],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.partition("|")
        states[jid.strip()] = state.split()[0] if state.strip() else "UNKNOWN"
    for jid in set(job_ids) - set(states):  # not (yet) in accounting: ask the controller
        try:
            ctl = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "JobState=" in ctl.stdout:
            states[jid] = ctl.stdout.split("JobState=")[1].split()[0]
        elif ctl.returncode != 0 and "not found" in ctl.stderr + ctl.stdout:
            states[jid] = VANISHED
    return states


class SlurmExecutor(Executor):
    """Cells as SLURM job arrays through submitit (see the module docstring)."""

    remote = True

    def missing(self) -> str | None:
        return slurm_missing()

    def _slurm(self) -> Any:
        assert self.options.executor_options is not None
        return self.options.executor_options.section("slurm")

    def run(self, cells: Sequence[Cell], ctx: RunContext) -> None:
        run_slurm_cells(cells, ctx.device, ctx.emit, self.options, self._slurm(), ctx.results,
                        ctx.record)  # fmt: skip

    def detached(self) -> bool:
        return not self._slurm().wait

    def summary(self, rows: list[dict[str, Any]]) -> str | None:
        return node_summary(rows) if rows else None


def run_slurm_cells(
    cells: Sequence[Any],
    device: Any,
    emit: Emit,
    opts: Any,
    slurm: Any,
    results: Any,
    record: Callable[..., None],
) -> None:
    """Submit ``cells`` as job arrays; with ``slurm.wait`` follow them until each has a row."""
    import submitit

    from memcomp.exec.child import cell_to_json
    from memcomp.exec.options import checkpoint_path
    from memcomp.exec.remote import request_base

    folder = Path(results.path)
    known = read_jobs(folder)
    live = {cid: jid for cid, jid in known.items() if job_states([jid]).get(jid) in LIVE_STATES}
    base = request_base(device, opts, slurm.cpus_per_cell)
    groups: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell.id not in live:
            key = json.dumps(slurm.resources_for(cell.learner.name), sort_keys=True)
            groups.setdefault(key, []).append(i)
    jobs: dict[int, Any] = {}
    log_folder = folder / "slurm" / "%j"
    for key, indices in groups.items():
        res = json.loads(key)
        ex = submitit.SlurmExecutor(folder=log_folder, max_num_timeout=slurm.max_requeues)
        params: dict[str, Any] = {"array_parallelism": slurm.array_parallelism,
                                  "job_name": f"memcomp-{cells[indices[0]].suite}"}  # fmt: skip
        if res["partition"]:
            params["partition"] = res["partition"]
        params["time"] = res["time_min"] or 60
        if res["cpus_per_cell"]:
            params["cpus_per_task"] = res["cpus_per_cell"]
        gpus = (
            res["gpus_per_cell"]
            if res["gpus_per_cell"] is not None
            else int(base["device"] == "cuda")
        )
        if gpus:
            params["gpus_per_node"] = gpus
        if res["mem_gb"]:
            params["mem"] = f"{int(res['mem_gb'] * 1024)}MB"
        ex.update_parameters(**params)
        requests = []
        for i in indices:
            ckpt = checkpoint_path(results, cells[i])
            requests.append({**base, "checkpoint": str(ckpt) if ckpt else None,
                             "cell": cell_to_json(cells[i])})  # fmt: skip
        submitted = ex.map_array(SlurmCellJob(str(folder), base["device"]), requests)
        for i, job in zip(indices, submitted, strict=True):
            jobs[i] = job
            known[cells[i].id] = str(job.job_id)
    for i, cell in enumerate(cells):
        if cell.id in live:
            jobs[i] = submitit.SlurmJob(folder=log_folder, job_id=live[cell.id])
    _write_jobs(folder, known)
    if not slurm.wait:
        return
    _follow(cells, device, jobs, results, record, emit)


def _follow(
    cells: Sequence[Any], device: Any, jobs: dict[int, Any], results: Any,
    record: Callable[..., None], emit: Emit,
) -> None:  # fmt: skip
    """Wait for the jobs; each finished one is recorded (under the results lock)."""
    started: set[int] = set()
    gone: dict[int, int] = {}
    pending = dict(jobs)
    while pending:
        states = job_states([str(j.job_id) for j in pending.values()])
        for i, job in list(pending.items()):
            state = states.get(str(job.job_id), "UNKNOWN")
            if state in ("UNKNOWN", VANISHED) and job.paths.result_pickle.exists():
                state = "COMPLETED"
            if state == VANISHED:  # just submitted jobs may be unknown for a moment
                gone[i] = gone.get(i, 0) + 1
                if gone[i] < 5:
                    continue
            if state == "RUNNING" and i not in started:
                started.add(i)
                emit(ProgressEvent("started", cells[i], iterations=cells[i].train.iterations))
            if state in LIVE_STATES or state == "UNKNOWN":
                continue
            del pending[i]
            with results_lock(Path(results.path)):
                record(i, *_finished(cells[i], device, job, state, results))
        if pending:
            time.sleep(2.0)


def _finished(cell: Any, device: Any, job: Any, state: str, results: Any) -> tuple[Any, str]:
    """The outcome of an ended job: what it returned, else the row it wrote, else an error."""
    from memcomp.engine import CellOutcome

    if state == "COMPLETED":
        with contextlib.suppress(Exception):
            r = job.result()
            return CellOutcome(r["row"], r["curve"], r["episodes"]), r["log"]
    runs = results.runs()
    if len(runs):
        mine = runs[runs["cell_id"].astype(str) == cell.id]
        if len(mine) and mine["status"].iloc[-1] == "ok":
            row = {k: v for k, v in mine.iloc[-1].to_dict().items() if v == v}
            curves, eps = results.curves(), results.episodes()
            curve = curves[curves["cell_id"].astype(str) == cell.id].to_dict("records")
            episodes = eps[eps["cell_id"].astype(str) == cell.id]["acc"].tolist()
            return CellOutcome(row, curve, episodes), ""
    status = "cancelled" if state.startswith("CANCELLED") else "error"
    if state == VANISHED:
        state = "without a record in squeue, sacct or scontrol (cancelled before it started?)"
    extra = {"executor": "slurm", "slurm_job_id": str(job.job_id)}
    outcome = failed_outcome(cell, device, f"SLURM job {job.job_id} ended {state}", extra)
    outcome.row["status"] = status
    return outcome, ""


def folder_status(folder: Path) -> list[dict[str, str]]:
    """Every cell of a results folder with its state: its row's status when it has one and no
    job of it is still queued or running, else its SLURM job's state, else ``not started``."""
    from memcomp.results.store import ResultsDir

    rd = ResultsDir(folder)
    cells = rd.manifest().get("cells", {})
    runs = rd.runs()
    rows = {}
    if len(runs):  # only the columns shown: a 200,000-row table as dicts took 10 s and 1 GB
        cols = [c for c in ("cell_id", "status", "label") if c in runs.columns]
        rows = {str(r["cell_id"]): r for r in runs[cols].to_dict("records")}
    jobs = read_jobs(folder)
    states = job_states([jobs[c] for c in cells if c in jobs])
    out = []
    for cid in cells:
        job = jobs.get(cid, "")
        state = states.get(job, "") if job else ""
        row = rows.get(cid)
        if row is not None and state not in LIVE_STATES:
            shown = str(row.get("status"))
        elif state:
            shown = state.lower()
        else:
            shown = "not started"
        label = str(row.get("label", "")) if row is not None else ""
        out.append({"cell_id": cid, "state": shown, "job": job, "label": label})
    return out
