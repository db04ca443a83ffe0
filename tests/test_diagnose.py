"""Hypergradient diagnostics: exact references against independent ones; the sweep's rows."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers_head import one_thread  # noqa: F401
from test_mrml import implicit_reference, lower_solution

from memcomp.diagnose import Config, Problem, run_sweep
from memcomp.diagnose.__main__ import main
from memcomp.diagnose.exact import head_hypergrad, proximal_hypergrad
from memcomp.diagnose.sweep import SharedWeights, make_tasks, meta_gradient

SMALL = Problem(ways=3, shots=2, queries=2, hidden=3, tasks=2)


def test_head_hypergrad_equals_the_independent_reference() -> None:
    weights, tasks = SharedWeights(SMALL), make_tasks(SMALL)
    learner = weights.learner("mrml", {"l2": SMALL.l2})
    got = head_hypergrad(learner, tasks, SMALL.l2)
    phis = [lower_solution(learner, t, SMALL.l2) for t in tasks]
    ref = torch.cat([r.flatten() for r in implicit_reference(learner, tasks, phis, SMALL.l2)])
    assert ref.norm() > 1e-3
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_proximal_hypergrad_is_the_limit_of_imaml_cg() -> None:
    weights, tasks = SharedWeights(SMALL), make_tasks(SMALL)
    params = {"lam": 2.0, "inner_lr": 0.05, "inner_steps": 20, "execution": "sequential"}
    exact = proximal_hypergrad(weights.learner("imaml", params), tasks, 2.0, 20, 0.05)
    errs = []
    for n in (2, 200):
        got, _ = meta_gradient(weights.learner("imaml", {**params, "cg_steps": n}), tasks)
        errs.append(float((got - exact).norm() / exact.norm()))
    assert errs[1] < 1e-8 < 1e-3 < errs[0]


def test_sweep_rows_measure_what_they_claim() -> None:
    head = {"l2": SMALL.l2, "inner_lr": 0.5, "execution": "sequential"}
    configs = [
        Config("maml-recompute", {"inner_steps": 3, "inner_lr": 0.1}, "K"),
        Config("fomaml", {"inner_steps": 3, "inner_lr": 0.1}, "K"),
        Config("mrml", {**head, "inner_steps": 600, "cg_steps": 40}, "K"),
        Config("mrml", {**head, "inner_steps": 600, "cg_steps": 1}, "N"),
        Config("f2sa", {**head, "inner_steps": 600, "lam": 10.0}, "lambda"),
        Config("f2sa", {**head, "inner_steps": 600, "lam": 1000.0}, "lambda"),
    ]
    rows = pd.DataFrame(run_sweep(configs, SMALL, repeats=1, memory=False))
    err = rows["rel_error"].tolist()
    assert err[0] < 1e-12  # checkpointed maml is maml
    assert err[1] > 1e-2  # first order is not
    assert err[2] < 1e-8 < 1e-3 < err[3]  # CG converged vs one CG step
    assert err[5] < err[4] / 30  # f2sa: O(1/lambda)
    assert rows["cosine"].between(-1, 1 + 1e-12).all() and rows["cosine"][0] > 1 - 1e-12
    assert rows["peak_mem_mb"].isna().all() and (rows["sec_per_meta_grad"] > 0).all()
    assert rows["problem"].tolist()[:3] == ["unrolled K=3", "unrolled K=3", "head l2=0.1"]
    assert rows.loc[4, "lower_grad_norm"] < 1e-10


def test_unknown_learner_has_no_reference() -> None:
    with pytest.raises(ValueError, match="no exact hypergradient"):
        run_sweep([Config("anil", {})], SMALL, repeats=1)


def test_main_writes_csv_and_figure(tmp_path, monkeypatch) -> None:
    import memcomp.diagnose.__main__ as entry

    monkeypatch.setattr(
        entry, "default_sweep", lambda p: [Config("mrml", {"inner_steps": 5, "cg_steps": 2})]
    )
    monkeypatch.setattr(entry, "Problem", lambda: SMALL)
    main(["--out", str(tmp_path), "--repeats", "1", "--sweep", "hypergrad"])
    rows = pd.read_csv(tmp_path / "hypergrad-error.csv")
    assert rows["learner"].tolist() == ["mrml"] and rows["rel_error"][0] > 0
    assert rows["peak_mem_mb"][0] > 0
    assert (tmp_path / "hypergrad-error.png").stat().st_size > 1000


def test_memory_vs_k_figure_from_a_runs_table() -> None:
    from memcomp.report.plots import plot_memory_vs_k

    runs = pd.DataFrame(
        {
            "learner": ["maml"] * 3 + ["mrml"] * 3,
            "inner_steps": [5, 10, 20] * 2,
            "peak_mem_mb": [10.0, 20.0, 40.0, 3.0, 3.0, 3.0],
            "status": ["ok"] * 6,
            "mem_source": ["cpu-estimate"] * 6,
        }
    )
    fig = plot_memory_vs_k(runs)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["maml", "mrml"]
    assert list(ax.get_lines()[0].get_ydata()) == [10.0, 20.0, 40.0]


def test_cli_diagnose_command(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import memcomp.diagnose.__main__ as entry
    from memcomp.cli import app

    monkeypatch.setattr(entry, "default_sweep", lambda p: [Config("sama", {"inner_steps": 3})])
    monkeypatch.setattr(entry, "Problem", lambda: SMALL)
    args = ["diagnose", "--out", str(tmp_path), "--repeats", "1", "--sweep", "hypergrad"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "hypergrad-error.csv")["learner"].tolist() == ["sama"]
