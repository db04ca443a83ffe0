"""CG that diverges stops the cell (status=diverged, with the reason); lower_grad_norm column."""

from __future__ import annotations

from pathlib import Path

import fake_learners  # noqa: F401 - registers the fake-tiny dataset
from test_robustness import run


def test_singular_mrml_cell_is_diverged_with_the_reason(tmp_path: Path) -> None:
    """mrml with l2: 0 and one shot (the configuration the paper's code ran): singular head
    Hessian; with l2 > 0 the same cell trains and records its lower-level gradient norm."""
    learners = [
        {"name": "mrml", "inner_steps": 5, "cg_steps": 30, "l2": 0.0},
        {"name": "mrml", "inner_steps": 5, "cg_steps": 30, "l2": 0.1},
    ]
    outcomes, results = run(tmp_path, learners, isolation="inline")
    bad, good = (o.row for o in outcomes)
    assert bad["status"] == "diverged" and bad["diverged_at"] == 1
    assert "CG" in bad["error"] and "raise l2" in bad["error"]
    assert good["status"] == "ok" and 0 < good["lower_grad_norm"] < 10
    runs = results.runs()
    assert "lower_grad_norm" in runs.columns
