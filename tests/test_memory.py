"""MemoryMeter: exact CPU-estimate accounting, expected physics, determinism, CUDA fold logic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from memcomp.measure.memory import (
    MB,
    MemoryMeter,
    MemoryResult,
    StorageTracker,
    resolve_source,
    round_alloc,
)

N = 10_000  # floats per activation: 40_000 bytes -> 40_448 rounded
S = round_alloc(4 * N)


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only add contention
    yield
    torch.set_num_threads(old)


def peak_bytes(fn, **kw) -> int:
    meter = MemoryMeter("cpu", **kw)
    with meter.measure():
        fn()
    res = meter.result()
    assert res.source == "cpu-estimate" and res.device == "cpu"
    return round(res.peak_mb * MB)


def test_round_alloc_matches_cuda_block_sizes():
    assert [round_alloc(n) for n in (0, 1, 511, 512, 513, 40_000)] == [0, 512, 512, 512, 1024, S]


def test_resolve_source():
    cpu = torch.device("cpu")
    assert resolve_source(cpu) == "cpu-estimate"
    assert resolve_source(torch.device("cuda"), "auto") == "cuda"
    assert resolve_source(cpu, "none") == "none"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_source(cpu, "cuda")
    with pytest.raises(ValueError, match="unknown memory source"):
        resolve_source(cpu, "gpu")


def test_single_allocation_is_exact():
    keep = []
    assert peak_bytes(lambda: keep.append(torch.empty(N))) == S
    assert peak_bytes(lambda: torch.empty(N)) == S  # freed at once, still the peak
    assert peak_bytes(lambda: keep.append(keep[0][:10])) == 0  # a view allocates nothing


def test_chain_retaining_activations_grows_linearly_with_k():
    x = torch.randn(N, requires_grad=True)

    def chain(k: int) -> None:
        h = x
        for _ in range(k):
            h = torch.sin(h)  # saves its input for backward
        h.sum().backward()
        x.grad = None

    peaks = [peak_bytes(lambda k=k: chain(k)) for k in (2, 4, 6, 8)]
    steps = [b - a for a, b in zip(peaks, peaks[1:], strict=False)]
    assert steps == [2 * S] * 3, (peaks, steps)


def test_no_grad_loop_stays_flat():
    x = torch.randn(N)

    def loop(k: int) -> None:
        with torch.no_grad():
            h = x
            for _ in range(k):
                h = torch.sin(h)

    assert [peak_bytes(lambda k=k: loop(k)) for k in (2, 5, 20)] == [2 * S] * 3


def test_retained_extra_copy_raises_the_peak():
    x = torch.randn(N, requires_grad=True)
    stash: list[torch.Tensor] = []

    def step(keep_copy: bool) -> None:
        h = x
        for _ in range(4):
            h = torch.sin(h)
            if keep_copy:
                stash.append(h.detach().clone())
        h.sum().backward()
        x.grad = None

    plain = peak_bytes(lambda: step(False))
    leaky = peak_bytes(lambda: step(True))
    assert leaky - plain == 4 * S


def test_baseline_counts_pre_existing_storages_and_their_frees():
    holder = [torch.zeros(2 * N)]
    w = torch.randn(N)
    meter = MemoryMeter("cpu", resident=[holder])
    with meter.measure():
        holder.clear()  # frees a pre-existing block the region never touched
        y = w * 2  # touches w (pre-existing), allocates S below what was freed
        del y
    res = meter.result()
    assert round(res.baseline_mb * MB) == round_alloc(8 * N) + S
    assert res.peak_mb == 0.0
    assert res.reserved_mb is None


def conv_step(hidden: int = 8, k: int = 3):
    """A tiny second-order MAML-like step on a conv net: forward, K inner steps, backward."""
    torch.manual_seed(0)
    w1 = torch.randn(hidden, 1, 3, 3, requires_grad=True)
    w2 = torch.randn(5, hidden * 7 * 7, requires_grad=True)
    x, y = torch.randn(10, 1, 14, 14), torch.arange(5).repeat(2)

    def net(a, b, inp):
        h = F.max_pool2d(
            F.relu(F.batch_norm(F.conv2d(inp, a, padding=1), None, None, training=True)), 2
        )
        return h.flatten(1) @ b.t()

    def step(meter: MemoryMeter) -> None:
        fast = [w1, w2]
        with meter.phase("inner"):
            for _ in range(k):
                loss = F.cross_entropy(net(*fast, x), y)
                grads = torch.autograd.grad(loss, fast, create_graph=True)
                fast = [p - 0.1 * g for p, g in zip(fast, grads, strict=True)]
        with meter.phase("hypergrad"):
            F.cross_entropy(net(*fast, x), y).backward()
        w1.grad = w2.grad = None

    return step


def measure_conv(k: int, iterations: int = 2) -> MemoryResult:
    step = conv_step(k=k)
    meter = MemoryMeter("cpu")
    step(meter)  # warm-up, unmeasured
    for _ in range(iterations):
        with meter.measure():
            step(meter)
    return meter.result()


def test_estimate_is_identical_run_to_run_and_phases_bound_the_peak():
    a, b = measure_conv(3), measure_conv(3)
    assert a == b
    assert set(a.phases) == {"inner", "hypergrad"}
    assert max(a.phases.values()) == a.peak_mb
    assert 0 < a.phases["inner"] < a.phases["hypergrad"]
    torch.set_num_threads(2)
    assert measure_conv(3, iterations=1) == a  # independent of threads and of repeats


def test_second_order_inner_loop_grows_with_k():
    peaks = [measure_conv(k).peak_mb for k in (1, 2, 3, 4)]
    steps = [q - p for p, q in zip(peaks, peaks[1:], strict=False)]
    assert min(steps) > 0
    assert max(steps) - min(steps) < 1e-3 * peaks[-1]  # linear


def test_phase_outside_measure_is_noop_and_none_source_reports_none():
    meter = MemoryMeter("cpu")
    with meter.phase("inner"):
        torch.empty(N)
    assert meter.result().peak_mb is None and meter.result().phases == {}
    off = MemoryMeter("cpu", source="none")
    with off.measure(), off.phase("inner"):
        torch.empty(N)
    assert off.result() == MemoryResult("none", "cpu", None, None, None, {})


def test_nested_measure_is_an_error():
    meter = MemoryMeter("cpu")
    with pytest.raises(RuntimeError, match="nested"), meter.measure(), meter.measure():
        pass


def test_tracker_sees_backward_ops():
    x = torch.randn(N, requires_grad=True)
    tracker = StorageTracker("cpu")
    with tracker:
        y = torch.exp(x)  # saves its output: S
        y.sum().backward()  # grad of x: S more while y is alive
    assert tracker.read_peak() >= 2 * S


class FakeCuda:
    """Stands in for the CUDA allocator statistics; the test drives ``alloc``/``free``."""

    def __init__(self) -> None:
        self.allocated = self.peak = 0

    def alloc(self, n: int) -> None:
        self.allocated += n
        self.peak = max(self.peak, self.allocated)

    def free(self, n: int) -> None:
        self.allocated -= n

    def reset(self, device=None) -> None:
        self.peak = self.allocated


def test_cuda_fold_combines_phases_and_gaps(monkeypatch):
    fake = FakeCuda()
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: fake.allocated)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: fake.peak)
    monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: 8 * MB)
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: 9 * MB)
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", fake.reset)
    fake.alloc(100 * MB)  # weights etc.
    meter = MemoryMeter(torch.device("cuda"))
    assert meter.source == "cuda"
    for gap in (7, 3):
        with meter.measure():
            fake.alloc(gap * MB)  # a gap before any phase is the region's peak (first pass)
            fake.free(gap * MB)
            with meter.phase("inner"):
                fake.alloc(5 * MB)
                with meter.phase("solve"):
                    fake.alloc(1 * MB)
                    fake.free(1 * MB)
            with meter.phase("hypergrad"):
                fake.alloc(1 * MB)
                fake.free(6 * MB)
    res = meter.result()
    assert res == MemoryResult(
        "cuda", "cuda", 7.0, 100.0, 9.0, {"inner": 6.0, "solve": 6.0, "hypergrad": 6.0}
    )


def learner_peak(name: str, params: dict, supervised: bool = False) -> float:
    """Estimated peak (MB) of one meta-iteration of a tiny Conv4 cell after one warm-up."""
    from memcomp.backbones import build_backbone
    from memcomp.learners import build_learner
    from memcomp.types import Task

    torch.manual_seed(0)
    task = Task(torch.randn(5, 1, 28, 28), torch.arange(5), torch.randn(15, 1, 28, 28),
                torch.arange(5).repeat(3))  # fmt: skip
    learner = build_learner(name, params, build_backbone("conv4", {"hidden": 8}, (1, 28, 28)), 5)
    opt = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad])
    meter = MemoryMeter("cpu", resident=[learner, opt, task])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if supervised:  # plain forward+backward of the backbone on the same images
            x, y = torch.cat([task.xs, task.xq]), torch.cat([task.ys, task.yq])
            F.cross_entropy(learner.head(learner.backbone(x)), y).backward()
        else:
            learner.meta_backward([task])
        opt.step()

    step()
    with meter.measure():
        step()
    return meter.result().peak_mb


def test_learners_show_the_papers_memory_shape():
    mrml = [learner_peak("mrml", {"inner_steps": k, "cg_steps": 3}) for k in (2, 8)]
    anil = [learner_peak("anil", {"inner_steps": k, "features": "once"}) for k in (2, 8)]
    maml = [learner_peak("maml", {"inner_steps": k}) for k in (1, 2, 3)]
    assert mrml[0] == mrml[1]  # flat in K
    assert anil[1] == pytest.approx(anil[0], rel=0.01)  # flat up to its small head graph
    assert maml[2] - maml[1] == pytest.approx(maml[1] - maml[0], rel=1e-3)  # linear in K
    assert maml[1] - maml[0] > 0.3 * maml[0]
    assert mrml[0] <= learner_peak("anil", {}, supervised=True)  # paper: <= one fwd+bwd
