"""``maml-recompute``: gradient checkpointing gives exactly ``maml``'s meta-gradient (float64)."""

from __future__ import annotations

import pytest
import torch
from helpers_head import one_thread  # noqa: F401
from helpers_learners import make_learner, make_task, run_meta_backward

from memcomp.learners.recompute import segment_length


@pytest.fixture
def tasks():
    return [make_task(1), make_task(2), make_task(3)]


@pytest.mark.parametrize("execution", ["sequential", "batched"])
@pytest.mark.parametrize(("steps", "segment"), [(5, None), (5, 2), (4, 1), (3, 7), (0, None)])
def test_recompute_equals_maml(tasks, execution, steps, segment) -> None:
    common = {"inner_steps": steps, "inner_lr": 0.4, "execution": execution}
    ref = run_meta_backward(make_learner("maml", common), tasks)
    learner = make_learner("maml-recompute", {**common, "segment": segment})
    got = run_meta_backward(learner, tasks)
    assert ref.norm() > 1e-3
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)


def test_recompute_reports_the_query_loss(tasks) -> None:
    common = {"inner_steps": 3, "inner_lr": 0.4}
    for execution in ("sequential", "batched"):
        ref = make_learner("maml", {**common, "execution": execution}).meta_backward(tasks)
        got = make_learner("maml-recompute", {**common, "execution": execution}).meta_backward(
            tasks
        )
        torch.testing.assert_close(got.loss, ref.loss, rtol=1e-13, atol=0)


def test_segment_length_defaults_to_ceil_sqrt() -> None:
    assert [segment_length(k, None) for k in (0, 1, 4, 5, 16, 17, 100)] == [1, 1, 2, 3, 4, 5, 10]
    assert segment_length(20, 6) == 6


def test_recompute_memory_grows_with_sqrt_k_and_maml_with_k() -> None:
    from test_memory import learner_peak

    ks = (4, 16, 36)  # segments 2, 4, 6: equal steps in sqrt(K), growing steps in K
    rec = [
        learner_peak("maml-recompute", {"inner_steps": k, "execution": "sequential"}) for k in ks
    ]
    maml = [learner_peak("maml", {"inner_steps": k, "execution": "sequential"}) for k in ks]
    assert rec[2] - rec[1] == pytest.approx(rec[1] - rec[0], rel=0.05)  # linear in sqrt(K)
    # maml is linear in K: increments in proportion to the K steps (20 vs 12)
    assert (maml[2] - maml[1]) / (maml[1] - maml[0]) == pytest.approx(20 / 12, rel=0.05)
    assert rec[2] < 0.25 * maml[2]
