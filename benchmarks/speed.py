"""Seconds per meta-iteration and peak memory of every learner, sequential vs batched, vs a floor.

One run, one device. For each shape (the paper's miniImageNet shape: 84x84, Conv4-32; CIFAR shape:
32x32, Conv4-64; 5-way 5-shot, 5 queries, meta-batch 32, K = N = 20) it times, with the same
random tasks (memory and time depend on shapes, not pixel values):

* the floor: a plain supervised step (backbone + linear head, cross-entropy, forward+backward,
  Adam step) over the same images, all in one batch;
* every learner in both execution modes (``--modes``): ``zero_grad``, ``meta_backward``, Adam step.

Time: median of ``--iters`` synchronised steps after ``--warmup``
(``memcomp.measure.timing.StepTimer``). Memory: peak increment of one extra step
(``memcomp.measure.memory.MemoryMeter``, source ``auto``: CUDA's allocator on a GPU, the
dispatch-level estimate on the CPU). Prints ratios learner / floor and batched / sequential and
writes a CSV to ``--out``. A cell that fails (out of memory, any error) is a row with that status;
the run goes on.

``--peers`` adds peer implementations (``benchmarks/peers.py``). Before a peer is timed, its
meta-gradient is checked against memcomp's learner in float64 on the same device, on the same
shape and K with ``CHECK_TASKS`` tasks (float32 is no reference: second-order MAML's float32
meta-gradient at K = 5..20 differs from the float64 one by 9-39% on an H200, so two correct
float32 implementations differ that much too). The row's ``peer_check`` is ``ok``,
``mismatch <rel. error>`` (status ``mismatch``; still timed) or ``error <message>`` (status
``error``; not timed); ``peer_err_float64`` and ``peer_err_run`` (the same comparison in the run's
dtype, for information) hold the relative errors.

``--compile none inductor graphs`` times every learner and execution mode once per
``train.compile`` mode (column ``compile``), through memcomp's own ``apply_compile`` and
``compile_skip_reason`` (memcomp/engine/compiling.py). A learner that does not take a mode is a
row with status ``refused`` and memcomp's message in ``error`` (only ``mrml`` takes them today);
``graphs`` off CUDA is ``skipped`` with the reason. Before a compiled row is timed, its
meta-gradient is compared with the eager learner's on the same weights and tasks in the run's
dtype: ``compile_err`` (relative error) and ``compile_noise``, how far the eager meta-gradient
itself moves when the images are perturbed at rounding level (``1 + eps * randn``, the larger of
two draws). Status ``mismatch`` (still timed) when ``compile_err`` is above ``--compile-tol``
(1e-4, for float32) and above 10 x ``compile_noise``. The noise is not always small: at the
CIFAR shape with K = N = 20 on these random tasks, the head's gradient steps overshoot
(features' squared norm ~390, step 0.1) and 20 CG steps leave 7-14% residual, so eager mrml's
solve moves by 1e-3 for ANY rounding-level perturbation, float64 included. Measured on the CPU:
compiled vs eager 3e-3 in float64 (4 tasks) and 1.5e-2 in float32 (32 tasks); with 40 CG steps
the same perturbation moves the solve by 5e-6. ``vs_floor`` stays learner / floor. On the CPU
the memory column of a compiled row is the eager estimate (the estimate is a dispatch mode,
under which compiled functions run eagerly); its time is the compiled code's.

``--opcount`` profiles one more step of each row (``torch.profiler``, CPU and, on a GPU, CUDA
activity; see :func:`count_ops`): ``ops_per_iter`` (ATen ops called at top level, not inside
another ATen op), ``ops_vs_floor`` (that / the floor's), ``compiled_kernels`` (inductor's
generated C++ or Triton kernels) and, on CUDA only, ``cuda_kernels`` (kernels the GPU ran) and
``cuda_launches`` (host launch calls; one per CUDA-graph replay). These tell launch-bound
learners from compute-bound ones on any machine: a GPU's time per meta-iteration at small
shapes follows the launches, not the arithmetic.

    python benchmarks/speed.py --device cuda --out speed.csv
    python benchmarks/speed.py --quick             # tiny sizes on the CPU, a few seconds
    python benchmarks/speed.py --shapes cifar --learners maml --meta-batch 4 --inner-steps 5 --peers
    python benchmarks/speed.py --quick --compile none inductor --opcount --learners mrml maml anil
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.util
import math
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memcomp.backbones import build_backbone
from memcomp.engine.compiling import apply_compile, compile_skip_reason
from memcomp.errors import InputError
from memcomp.learners import Learner, build_learner
from memcomp.measure.timing import StepTimer
from memcomp.numerics.flat import flatten
from memcomp.types import Task

MODES = ("sequential", "batched")
CHECK_TASKS = 2  # tasks of a peer's float64 meta-gradient check (correctness, not scale)
PEER_TOL = 1e-6  # relative error allowed between a peer and memcomp in float64
COMPILES = ("none", "inductor", "graphs")  # train.compile modes (memcomp/engine/compiling.py)
COMPILE_TOL = 1e-4  # relative error allowed between compiled and eager meta-gradients (float32)
NOISE_DRAWS = 2  # rounding-level perturbations of the eager meta-gradient (compile_noise)
NOISE_FACTOR = 10  # compile_err within 10 x compile_noise is rounding, whatever COMPILE_TOL
# host calls that launch GPU work (kernels, or a whole captured CUDA graph: one call)
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                "cudaLaunchCooperativeKernel", "cudaGraphLaunch", "cuGraphLaunch")  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: image size and Conv4 width."""

    name: str
    image: tuple[int, int, int]
    hidden: int
    blocks: int = 4


SHAPES = {
    "miniimagenet": Shape("miniimagenet", (3, 84, 84), 32),
    "cifar": Shape("cifar", (3, 32, 32), 64),
}
QUICK_SHAPE = Shape("quick", (3, 16, 16), 8, blocks=2)


@dataclass
class Config:
    ways: int = 5
    shots: int = 5
    queries: int = 5
    meta_batch: int = 32
    inner_steps: int = 20
    cg_steps: int = 20
    iters: int = 10
    warmup: int = 2
    task_chunk: int | None = None
    memory: bool = True
    dtype: torch.dtype = torch.float32
    learners: list[str] = field(default_factory=list)
    modes: tuple[str, ...] = MODES
    peer_tol: float = PEER_TOL
    compiles: tuple[str, ...] = ("none",)
    compile_tol: float = COMPILE_TOL
    opcount: bool = False


# label -> (registry name, extra params); K and N are filled in from the config.
LEARNER_SPECS: dict[str, tuple[str, dict]] = {
    "maml": ("maml", {}),
    "fomaml": ("fomaml", {}),
    "imaml": ("imaml", {}),
    "anil": ("anil", {"features": "once"}),
    "anil-per-step": ("anil", {"features": "per-step"}),
    "itd-bio": ("itd-bio", {"features": "per-step"}),
    "mrml": ("mrml", {}),
    "f2sa": ("f2sa", {}),
}


def learner_params(name: str, extra: dict, cfg: Config, mode: str) -> dict:
    params = {**extra, "inner_steps": cfg.inner_steps, "execution": mode}
    if name in ("imaml", "mrml"):
        params["cg_steps"] = cfg.cg_steps
    if mode == "batched" and cfg.task_chunk is not None:
        params["task_chunk"] = cfg.task_chunk
    return params


def make_tasks(cfg: Config, shape: Shape, device: torch.device, seed: int = 0) -> list[Task]:
    """``meta_batch`` random tasks of the benchmark shape, on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for _ in range(cfg.meta_batch):
        ys = torch.arange(cfg.ways).repeat_interleave(cfg.shots)
        yq = torch.arange(cfg.ways).repeat_interleave(cfg.queries)
        xs = torch.randn(len(ys), *shape.image, generator=gen)
        xq = torch.randn(len(yq), *shape.image, generator=gen)
        tasks.append(Task(xs, ys, xq, yq).to(device, cfg.dtype))
    return tasks


def make_backbone(shape: Shape, cfg: Config, device: torch.device, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    params = {"hidden": shape.hidden, "blocks": shape.blocks}
    return build_backbone("conv4", params, shape.image).to(device, cfg.dtype)


def make_learner(
    name: str, params: dict, shape: Shape, cfg: Config, device: torch.device
) -> Learner:
    backbone = make_backbone(shape, cfg, device)
    torch.manual_seed(1)
    return build_learner(name, params, backbone, cfg.ways).to(device, cfg.dtype)


def measure(
    step: Callable[[], object], cfg: Config, device: torch.device, resident: list
) -> tuple[float, float | None]:
    """Median seconds of ``step`` after warm-up, and the peak memory (MB) of one more step."""
    timer = StepTimer(device, warmup=cfg.warmup)
    for _ in range(cfg.warmup + cfg.iters):
        timer.start()
        step()
        timer.stop()
    peak = None
    if cfg.memory:
        try:
            from memcomp.measure.memory import MemoryMeter
        except ImportError:  # pragma: no cover - memory.py not available
            MemoryMeter = None  # noqa: N806
        if MemoryMeter is not None:
            meter = MemoryMeter(device, "auto", resident=resident)
            with meter.measure():
                step()
            peak = meter.result().peak_mb
    assert timer.median is not None
    return timer.median, peak


def floor_step(shape: Shape, cfg: Config, tasks: list[Task], device: torch.device):
    """Plain supervised forward+backward (+ Adam step) over the same images in one batch."""
    backbone = make_backbone(shape, cfg, device)
    model = nn.Sequential(backbone, nn.Linear(backbone.feat_dim, cfg.ways)).to(device, cfg.dtype)
    x = torch.cat([t.xs for t in tasks] + [t.xq for t in tasks])
    y = torch.cat([t.ys for t in tasks] + [t.yq for t in tasks])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step, [model, opt, x, y]


def learner_step(learner: Learner, tasks: list[Task]):
    opt = torch.optim.Adam(learner.meta_parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        learner.meta_backward(tasks)
        opt.step()

    return step, [learner, opt, tasks]


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def one_line(err: BaseException, limit: int = 200) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:limit]


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class NotRun(Exception):
    """A cell that is a row without a time: ``status`` ``refused`` (the learner does not take
    the compile mode) or ``skipped`` (the device cannot run it), the message its ``error``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def compiled_learner(
    name: str, params: dict, compile_mode: str, shape: Shape, cfg: Config, device: torch.device
) -> Learner:
    """The learner, handed ``compile_mode``'s wrapper by memcomp's own ``apply_compile`` (its
    refusal is :class:`NotRun` ``refused``; ``graphs`` off CUDA :class:`NotRun` ``skipped``)."""
    learner = make_learner(name, params, shape, cfg, device)
    try:
        apply_compile(learner, name, compile_mode)
    except InputError as err:
        raise NotRun("refused", " ".join(str(err).split())) from None
    reason = compile_skip_reason(compile_mode, device)
    if reason:
        raise NotRun("skipped", reason)
    return learner


def meta_grad(learner: Learner, tasks: list[Task]) -> torch.Tensor:
    learner.zero_grad(set_to_none=True)
    learner.meta_backward(tasks)
    grad = _flat_grad(learner.meta_parameters()).clone()
    learner.zero_grad(set_to_none=True)
    return grad


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``|got - ref| / |ref|`` (NaN or inf where ``ref`` is zero or not finite)."""
    return float((got - ref).norm() / ref.norm())


def perturbed(tasks: list[Task], seed: int) -> list[Task]:
    """``tasks`` with every image multiplied by ``1 + eps * randn`` (``eps``: the dtype's
    machine epsilon): the same computation with other rounding."""
    gen = torch.Generator().manual_seed(seed)
    eps = torch.finfo(tasks[0].xs.dtype).eps

    def jitter(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen).to(x)
        return x * (1 + eps * noise)

    return [Task(jitter(t.xs), t.ys, jitter(t.xq), t.yq) for t in tasks]


def compile_error(
    compiled: Learner, name: str, params: dict, shape: Shape, cfg: Config, device, tasks
) -> tuple[float, float]:
    """``(compile_err, compile_noise)``. ``compile_err`` = ``|g_compiled - g_eager| / |g_eager|``:
    meta-gradients of one meta-iteration on the timed tasks, in the run's dtype, from freshly
    built learners (same seeds: the same weights). The compiled one is then timed, so its
    compilation or capture happens here, not in the timing. ``compile_noise``: how far the eager
    meta-gradient itself moves when the images are perturbed at rounding level
    (:func:`perturbed`, the largest of ``NOISE_DRAWS``), the error any reordering of sums
    (which is what compiling does) may cause."""
    ref = meta_grad(make_learner(name, params, shape, cfg, device), tasks)
    noise = 0.0
    for seed in range(NOISE_DRAWS):
        moved = meta_grad(make_learner(name, params, shape, cfg, device), perturbed(tasks, seed))
        noise = max(noise, relative_error(moved, ref))
    return relative_error(meta_grad(compiled, tasks), ref), noise


def run_shape(shape: Shape, cfg: Config, device: torch.device, peers: bool) -> list[dict]:
    tasks = make_tasks(cfg, shape, device)
    rows: list[dict] = []

    def record(
        label: str, mode: str, build: Callable[[dict], tuple], compile_mode: str = "none",
        **extra: object,
    ) -> None:  # fmt: skip
        """Time ``build(row)``'s step into a row; a failure is the row's status, never the end
        (``build`` may add fields to the row, e.g. ``compile_err``)."""
        row = {"shape": shape.name, "learner": label, "mode": mode, "compile": compile_mode,
               "device": str(device)}  # fmt: skip
        row.update(extra)
        try:
            step, resident = build(row)
            row["seconds"], row["peak_mb"] = measure(step, cfg, device, resident)
            if cfg.opcount:
                row.update(count_ops(step, device))
            row.setdefault("status", "ok")
        except NotRun as err:  # a refused or skipped compile mode: a row, no traceback
            row.update(seconds=math.nan, peak_mb=math.nan, status=err.status, error=str(err))
        except Exception as err:  # noqa: BLE001 - an OOM, a missing peer, a bug: one row each
            oom = is_oom(err)
            if not oom:
                traceback.print_exc(file=sys.stderr)
            row.update(seconds=math.nan, peak_mb=math.nan, status="oom" if oom else "error")
            row["error"] = one_line(err)
        finally:
            free_memory(device)
        rows.append(row)
        print(f"  {label:14s} {mode:10s} {compile_mode:8s} {fmt_row(row)}", flush=True)

    def build_learner_step(name: str, params: dict, compile_mode: str):
        def build(row: dict) -> tuple:
            if compile_mode == "none":
                return learner_step(make_learner(name, params, shape, cfg, device), tasks)
            learner = compiled_learner(name, params, compile_mode, shape, cfg, device)
            err, noise = compile_error(learner, name, params, shape, cfg, device, tasks)
            row["compile_err"], row["compile_noise"] = err, noise
            if not err <= max(cfg.compile_tol, NOISE_FACTOR * noise):  # NaN is a mismatch
                row["status"] = "mismatch"  # still timed
            return learner_step(learner, tasks)

        return build

    print(f"{shape.name}: {shape.image}, conv4-{shape.hidden}, {len(tasks)} tasks", flush=True)
    record("floor", "-", lambda row: floor_step(shape, cfg, tasks, device))
    for label in cfg.learners:
        name, extra = LEARNER_SPECS[label]
        for mode in cfg.modes:
            params = learner_params(name, extra, cfg, mode)
            for compile_mode in cfg.compiles:
                record(label, mode, build_learner_step(name, params, compile_mode), compile_mode)
    if peers:
        for peer in load_peers().values():
            check = check_peer(peer, shape, cfg, device)
            if check["status"] == "error":
                rows.append({"shape": shape.name, "learner": peer.name, "mode": "peer",
                             "compile": "none", "device": str(device), "seconds": math.nan,
                             "peak_mb": math.nan, **check})  # fmt: skip
                print(f"  {peer.name:14s} {'peer':10s} {check['peer_check']}", flush=True)
                continue
            record(peer.name, "peer", lambda row, p=peer: peer_step(p, shape, cfg, device, tasks),
                   **check)  # fmt: skip
    add_ratios(rows)
    return rows


# --- op counts -------------------------------------------------------------------------------


def _is_top_aten(event) -> bool:
    """An ``aten::`` event no ancestor of which is an ``aten::`` event."""
    if not event.name.startswith("aten::"):
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def _is_compiled_kernel(name: str) -> bool:
    return "cpp_fused" in name or name.startswith("triton_")


def classify_events(events) -> dict:
    """The op counts of one profiled step's events (``torch.profiler``'s ``FunctionEvent``s:
    ``name``, ``device_type``, ``activity_type``, ``cpu_parent``); see :func:`count_ops`."""
    from torch.autograd import DeviceType

    host = [e for e in events if e.device_type == DeviceType.CPU]
    device = [e for e in events if e.device_type == DeviceType.CUDA]
    return {
        "ops_per_iter": sum(_is_top_aten(e) for e in host),
        "compiled_kernels": sum(_is_compiled_kernel(e.name) for e in host),
        "cuda_kernels": sum(e.activity_type == "kernel" for e in device),
        "cuda_launches": sum(e.name in LAUNCH_CALLS for e in host),
    }


def count_ops(step: Callable[[], object], device: torch.device) -> dict:
    """What one more meta-iteration ``step`` (after the warm-up and the timed steps) dispatches,
    counted with ``torch.profiler`` (CPU activity, and CUDA on a GPU):

    * ``ops_per_iter``: profiler events named ``aten::*`` that are not inside another
      ``aten::*`` event: every ATen op the step's Python code, the autograd engine (backward
      nodes), the optimizer and compiled graphs called, without the ops those ops call
      internally (``aten::linear`` counts, its ``aten::addmm`` not). Library calls that a
      compiled graph makes (``aten::bmm`` in inductor's CPU code for ``mrml``) are ATen ops and
      count; its generated kernels are not ATen ops and do not.
    * ``compiled_kernels``: host events of inductor's generated kernels: ``*cpp_fused*`` (C++
      on the CPU; visible only because :func:`main` sets inductor's
      ``cpp.enable_kernel_profile`` with ``--opcount``, before anything is compiled) and
      ``triton_*`` (the launches of its Triton kernels on a GPU). Other events a compiled call
      emits (``Torch-Compiled Region: i/j``, ``## Call CompiledFxGraph ... ##``, ``TorchDynamo
      Cache Lookup``) are not counted. A CUDA-graph replay has none.
    * ``cuda_kernels`` (CUDA only, else empty): kernels the GPU ran (CUPTI ``kernel``
      activities; memory copies and sets not counted); ``cuda_launches``: host calls that launch
      them (``cudaLaunchKernel``, ``cuLaunchKernel``, ``cudaGraphLaunch`` ...: one per
      replayed CUDA graph, whatever its kernels).

    torch.profiler is not a Python dispatch mode, so compiled code runs compiled under it
    (``traced_eagerly`` in memcomp/engine/compiling.py runs the eager functions only under such
    a mode, as the CPU memory estimate is): the compiled regions and kernels above appear."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    counts = classify_events(prof.events())
    if device.type != "cuda":
        counts["cuda_kernels"] = counts["cuda_launches"] = ""
    return counts


# --- peers -----------------------------------------------------------------------------------


def load_peers() -> dict:
    """``PEERS`` of ``benchmarks/peers.py`` (loaded from beside this file, whatever the path)."""
    path = Path(__file__).resolve().parent / "peers.py"
    spec = importlib.util.spec_from_file_location("memcomp_bench_peers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module.PEERS


def peer_learner(peer, shape: Shape, cfg: Config, device: torch.device) -> Learner:
    """memcomp's sequential learner that ``peer`` re-implements: the model both run on."""
    name, extra = LEARNER_SPECS[peer.learner]
    params = learner_params(name, extra, cfg, "sequential")
    return make_learner(name, params, shape, cfg, device)


def _flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    return flatten([p.grad for p in params])


def peer_error(peer, shape: Shape, cfg: Config, device: torch.device) -> float:
    """Relative error ``|g_peer - g| / |g|`` of the peer's meta-gradient against memcomp's, on
    ``cfg.meta_batch`` tasks in ``cfg.dtype`` (same weights, same tasks)."""
    tasks = make_tasks(cfg, shape, device, seed=1)
    learner = peer_learner(peer, shape, cfg, device)
    ours = meta_grad(learner, tasks)
    peer.build(learner, tasks)()
    return relative_error(_flat_grad(learner.meta_parameters()), ours)


def check_peer(peer, shape: Shape, cfg: Config, device: torch.device) -> dict:
    """The row fields of a peer's meta-gradient check: float64 decides (``status`` ok, mismatch
    or error), the run's dtype is recorded beside it."""
    small = replace(cfg, meta_batch=min(cfg.meta_batch, CHECK_TASKS))
    out: dict = {"peer_err_float64": math.nan, "peer_err_run": math.nan}
    try:
        err = peer_error(peer, shape, replace(small, dtype=torch.float64), device)
    except Exception as e:  # noqa: BLE001 - a broken or missing peer is a row, not the end
        out.update(status="error", peer_check=f"error {one_line(e)}", error=one_line(e))
        return out
    finally:
        free_memory(device)
    out["peer_err_float64"] = err
    ok = err <= cfg.peer_tol  # NaN is a mismatch
    out.update(status="ok" if ok else "mismatch", peer_check="ok" if ok else f"mismatch {err:.2e}")
    if cfg.dtype != torch.float64:
        try:
            out["peer_err_run"] = peer_error(peer, shape, small, device)
        except Exception as e:  # noqa: BLE001 - information only
            print(f"  {peer.name}: run-dtype comparison failed: {one_line(e)}", flush=True)
        finally:
            free_memory(device)
    else:
        out["peer_err_run"] = err
    return out


def peer_step(peer, shape: Shape, cfg: Config, device: torch.device, tasks: list[Task]):
    """The timed step of a peer: its backward on memcomp's model, then the Adam step."""
    learner = peer_learner(peer, shape, cfg, device)
    opt = torch.optim.Adam(learner.meta_parameters(), lr=1e-4)
    backward = peer.build(learner, tasks)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        backward()
        opt.step()

    return step, [learner, opt, tasks]


# --- output ----------------------------------------------------------------------------------


def add_ratios(rows: list[dict]) -> None:
    """``vs_floor`` = seconds / floor seconds; ``batched_speedup`` = sequential / batched (same
    learner, same compile mode); with op counts, ``ops_vs_floor`` = ops_per_iter / the floor's."""
    floor_row = next(r for r in rows if r["learner"] == "floor")
    floor = floor_row["seconds"]
    floor_ops = floor_row.get("ops_per_iter")
    seq = {(r["learner"], r["compile"]): r["seconds"] for r in rows if r["mode"] == "sequential"}
    for r in rows:
        r["vs_floor"] = r["seconds"] / floor if floor > 0 else math.nan  # NaN: it failed
        key = (r["learner"], r["compile"])
        r["batched_speedup"] = (
            seq.get(key, math.nan) / r["seconds"] if r["mode"] == "batched" else math.nan
        )
        if "ops_per_iter" in r:
            r["ops_vs_floor"] = r["ops_per_iter"] / floor_ops if floor_ops else math.nan


def _num(x: object) -> float:
    return x if isinstance(x, (int, float)) else math.nan


def _status(row: dict) -> str:
    status = row.get("status", "?")
    if "peer_check" in row:
        status += f" (peer_check {row['peer_check']})"
    if "compile_err" in row:
        status += f" (compile_err {row['compile_err']:.1e}, noise {row['compile_noise']:.1e})"
    return status


def fmt_row(row: dict) -> str:
    if row.get("status") not in ("ok", "mismatch"):
        check = f"  peer_check {row['peer_check']}" if "peer_check" in row else ""
        return f"{row.get('status', '?')}: {row.get('error', '')}{check}"
    mem = "" if row["peak_mb"] is None else f"{row['peak_mb']:9.1f} MB"
    ops = ""
    if "ops_per_iter" in row:
        ops = f"  {row['ops_per_iter']} ops, {row['compiled_kernels']} compiled kernels"
        if row.get("cuda_kernels") != "":
            ops += f", {row['cuda_kernels']} CUDA kernels / {row['cuda_launches']} launches"
    status = _status(row).removeprefix(row["status"])
    return f"{1000 * row['seconds']:10.2f} ms {mem}{ops}{status}"


def print_table(rows: list[dict]) -> None:
    ops = any("ops_per_iter" in r for r in rows)
    cuda = any(r.get("cuda_kernels") not in (None, "") for r in rows)
    head = (
        f"{'shape':13s} {'learner':14s} {'mode':10s} {'compile':8s} {'ms/iter':>10s} "
        f"{'peak MB':>9s} {'x floor':>8s} {'seq/bat':>8s}"
    )
    if ops:
        head += f" {'ops/iter':>8s} {'x fl ops':>8s} {'compiled':>8s}"
    if cuda:
        head += f" {'cuda krn':>8s} {'launches':>8s}"
    print()
    print(head + "  status")
    for r in rows:
        peak = r.get("peak_mb")
        peak_s = (
            "-"
            if peak is None or (isinstance(peak, float) and math.isnan(peak))
            else (f"{peak:.1f}")
        )
        speed = "" if math.isnan(r["batched_speedup"]) else f"{r['batched_speedup']:.2f}"
        line = (
            f"{r['shape']:13s} {r['learner']:14s} {r['mode']:10s} {r['compile']:8s} "
            f"{1000 * r['seconds']:10.2f} {peak_s:>9s} {r['vs_floor']:8.2f} {speed:>8s}"
        )
        if ops:
            ratio = _num(r.get("ops_vs_floor"))
            ratio_s = "-" if math.isnan(ratio) else f"{ratio:.2f}"
            line += (
                f" {r.get('ops_per_iter', '-'):>8} {ratio_s:>8} {r.get('compiled_kernels', '-'):>8}"
            )
        if cuda:
            line += f" {r.get('cuda_kernels', '-'):>8} {r.get('cuda_launches', '-'):>8}"
        print(f"{line}  {_status(r)}")


def write_csv(rows: list[dict], path: Path, cfg: Config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    skip = ("learners", "memory", "modes", "compiles", "opcount")
    extra = {k: v for k, v in asdict(cfg).items() if k not in skip}
    extra["dtype"] = str(cfg.dtype).removeprefix("torch.")
    fields = [
        "shape", "learner", "mode", "compile", "device", "status", "seconds", "peak_mb",
        "vs_floor", "batched_speedup", "ops_per_iter", "ops_vs_floor", "compiled_kernels",
        "cuda_kernels", "cuda_launches", "error", "compile_err", "compile_noise", "peer_check",
        "peer_err_float64", "peer_err_run", *extra,
    ]  # fmt: skip
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, **extra})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--learners", nargs="+", default=list(LEARNER_SPECS), choices=LEARNER_SPECS)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                    help="execution modes timed per learner")  # fmt: skip
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--inner-steps", type=int, default=20)
    ap.add_argument("--cg-steps", type=int, default=20)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--task-chunk", type=int, default=None, help="batched mode chunk size")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (quick: 1)")
    ap.add_argument("--peers", action="store_true", help="add peer implementations (peers.py)")
    ap.add_argument("--peer-tol", type=float, default=PEER_TOL,
                    help="float64 relative error allowed between a peer and memcomp")  # fmt: skip
    ap.add_argument("--compile", nargs="+", default=["none"], choices=COMPILES, dest="compiles",
                    help="train.compile modes timed per learner and execution mode")  # fmt: skip
    ap.add_argument("--compile-tol", type=float, default=COMPILE_TOL,
                    help="relative error allowed, compiled vs eager meta-gradient")  # fmt: skip
    ap.add_argument("--opcount", action="store_true",
                    help="count ATen ops and kernels of one more step (profiler)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="tiny CPU-friendly sizes (CI)")
    ap.add_argument("--out", type=Path, default=Path("speed.csv"))
    return ap.parse_args(argv)


@contextmanager
def kernel_profile(on: bool):
    """With ``on``, inductor's C++ kernels are compiled with a profiler record each
    (``cpp.enable_kernel_profile``; restored after), so that ``compiled_kernels`` sees them on
    the CPU (Triton kernels' launches are recorded anyway)."""
    if not on:
        yield
        return
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        yield


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    threads = args.threads or (1 if args.quick else None)  # tiny ops: one thread is fastest
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(args.device)
    cfg = Config(
        meta_batch=args.meta_batch,
        inner_steps=args.inner_steps,
        cg_steps=args.cg_steps,
        iters=args.iters,
        warmup=args.warmup,
        task_chunk=args.task_chunk,
        memory=not args.no_memory,
        learners=list(args.learners),
        modes=tuple(args.modes),
        peer_tol=args.peer_tol,
        compiles=tuple(dict.fromkeys(args.compiles)),
        compile_tol=args.compile_tol,
        opcount=args.opcount,
    )
    shapes = [SHAPES[s] for s in args.shapes]
    if args.quick:
        cfg = replace(cfg, ways=3, shots=2, queries=2, meta_batch=4, inner_steps=3, cg_steps=3,
                      iters=3, warmup=1)  # fmt: skip
        shapes = [QUICK_SHAPE]
    print(f"device {device}; {cfg}", flush=True)
    rows: list[dict] = []
    with kernel_profile(cfg.opcount and "inductor" in cfg.compiles):
        for shape in shapes:
            rows += run_shape(shape, cfg, device, args.peers)
    print_table(rows)
    write_csv(rows, args.out, cfg)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
