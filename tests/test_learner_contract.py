"""The contract every registered learner keeps, run over ``LEARNERS.names()`` (no hand-kept list).

Each learner class declares ``test_params`` (tiny hyper-parameters) and ``exact`` (whether its
meta-gradient is the exact derivative of the mean query loss it reports). Every learner, float64,
tiny Conv4 with BatchNorm: finite loss; gradients exactly on the meta-parameters; deterministic;
mean over tasks; accumulates into existing ``.grad``; sequential == batched == chunked (when it has
an ``execution`` parameter). Exact learners: directional derivatives against central finite
differences of the reported loss. The test-only plugin learners (``fake_learners``) are imported
first so that the set of names does not depend on which test modules ran before.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import fake_learners  # noqa: F401  (registers the test plugin learners)
import pytest
import torch
from helpers_learners import (
    assert_matches_central_fd,
    flat_grad,
    flat_params,
    make_learner,
    make_task,
    run_meta_backward,
)

from memcomp.learners import LEARNERS, Learner
from memcomp.types import Task

NAMES = LEARNERS.names()


def contract_learner(name: str, **extra) -> Learner:
    cls = LEARNERS.get(name).factory
    return make_learner(name, {**getattr(cls, "test_params", {}), **extra})


@pytest.fixture
def tasks() -> list[Task]:
    return [make_task(11), make_task(12), make_task(13)]


def reported_loss(learner: Learner, tasks: list[Task]) -> torch.Tensor:
    learner.zero_grad(set_to_none=True)
    return learner.meta_backward(tasks).loss


def set_flat(learner: Learner, flat: torch.Tensor) -> None:
    with torch.no_grad():
        parts = torch.split(flat, [p.numel() for p in learner.meta_parameters()])
        for p, v in zip(learner.meta_parameters(), parts, strict=True):
            p.copy_(v.view_as(p))


def test_every_builtin_learner_is_covered():
    assert {"anil", "fomaml", "imaml", "itd-bio", "maml", "mrml"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_loss_finite_and_grads_exactly_on_meta_parameters(name, tasks):
    learner = contract_learner(name)
    frozen = learner.backbone.net[0].weight
    frozen.requires_grad_(False)
    learner.zero_grad(set_to_none=True)
    stats = learner.meta_backward(tasks)
    assert stats.loss.ndim == 0 and not stats.loss.requires_grad and torch.isfinite(stats.loss)
    meta = {id(p) for p in learner.meta_parameters()}
    assert meta == {id(p) for p in learner.parameters() if p.requires_grad}
    for _, p in learner.named_parameters():
        assert (p.grad is not None) == (id(p) in meta)
    assert frozen.grad is None
    assert all(t.xs.grad is None and t.xq.grad is None for t in tasks)
    g1 = flat_grad(learner).clone()
    assert torch.isfinite(g1).all() and g1.norm() > 0
    assert torch.equal(g1, run_meta_backward(learner, tasks))  # deterministic


@pytest.mark.parametrize("name", NAMES)
def test_meta_gradient_is_mean_over_tasks_and_accumulates(name, tasks):
    learner = contract_learner(name)
    every = run_meta_backward(learner, tasks)
    single = [run_meta_backward(learner, [t]) for t in tasks]
    torch.testing.assert_close(every, sum(single) / len(tasks), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(run_meta_backward(learner, tasks), every, rtol=0, atol=0)
    learner.meta_backward(tasks)  # adds to the .grad left by the line above
    torch.testing.assert_close(flat_grad(learner), 2 * every, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_sequential_batched_and_chunked_agree(name, tasks):
    learner = contract_learner(name)
    if "execution" not in type(learner.params).model_fields:
        pytest.skip(f"{name} has one execution mode")
    results = []
    for update in ({"execution": "sequential"}, {"execution": "batched"}, {"task_chunk": 2}):
        copy_ = copy.deepcopy(learner)
        copy_.params = learner.params.model_copy(update={"execution": "batched", **update})
        copy_.zero_grad(set_to_none=True)
        stats = copy_.meta_backward(tasks)
        results.append((stats.loss, flat_grad(copy_).clone()))
    (loss0, g0), *others = results
    for loss, g in others:
        torch.testing.assert_close(loss, loss0, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if LEARNERS.get(n).factory.exact])
def test_exact_meta_gradient_matches_finite_differences(name, tasks):
    learner = contract_learner(name)
    grad = run_meta_backward(learner, tasks)
    theta = flat_params(learner)

    def objective(flat: torch.Tensor) -> torch.Tensor:
        set_flat(learner, flat)
        return reported_loss(learner, tasks)

    assert_matches_central_fd(grad, theta, objective)
    set_flat(learner, theta)


def test_registry_and_params_load_without_torch():
    code = (
        "import sys, memcomp.learners as L; names = L.LEARNERS.names(); "
        "[L.LEARNERS.get(n).params() for n in names]; "
        "print(len(names), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, torch_loaded = out.stdout.split()
    assert int(count) >= 6 and torch_loaded == "False", out.stdout
