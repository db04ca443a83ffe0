"""One typed suite model (issue 19): learners keep their own validators when list values expand,
``executor:`` and ``budgets:`` are typed, and ``validate`` says what ``run`` says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import Field, field_validator
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import ConfigError, load_suite
from memcomp.learners import LEARNERS, LearnerParams

runner = CliRunner()
SUITE = """\
name: typed
device: cpu
datasets: [{name: synthetic, image_size: 8, channels: 1}]
settings: [{ways: 2, shots: 1, queries: 1}]
backbones: [{name: conv4, hidden: 2, blocks: 1}]
train: {iterations: 1, meta_batch: 1, eval_every: 1, val_episodes: 1}
test: {episodes: 1}
learners:
  - {name: maml, inner_steps: 1}
  - LEARNER
"""


def write(tmp_path: Path, learner: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("LEARNER", learner) + extra)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_suite(path)
    return str(e.value).splitlines()


def said(*args: str) -> tuple[int, list[str]]:
    """Exit code and the error lines (rich's wrapping undone) of a command."""
    res = runner.invoke(app, list(args))
    text = " ".join(res.output.split())
    return res.exit_code, [p.strip() for p in text.split("error:")[1:]]


def test_a_learner_model_validator_is_checked_by_validate_not_only_by_run(tmp_path: Path) -> None:
    path = write(tmp_path, "{name: imaml, inner_lr: 0.5, lam: 4}")
    (line,) = problems(path)
    assert line.startswith(f"{path}:10: learners[1]: inner_lr * lam = 2 >= 2: the proximal steps")
    code, lines = said("validate", str(path))
    assert code == 2 and lines == [line]
    out = tmp_path / "out"
    assert said("run", str(path), "--dry-run", "--out", str(out)) == (2, [line])
    assert said("run", str(path), "--out", str(out)) == (2, [line]) and not out.exists()


def test_each_expanded_combination_is_validated_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, "{name: imaml, inner_lr: 0.5, lam: [1, 4, 8]}")
    lines = problems(path)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{path}:10: learners[1]: inner_lr * lam = 2 >= 2")
    assert lines[0].endswith("(with lam=4.0)") and lines[1].endswith("(with lam=8.0)")
    assert load_suite(write(tmp_path, "{name: imaml, inner_lr: 0.5, lam: [1, 2, 3]}")).cells


def test_many_failing_combinations_are_counted_not_listed(tmp_path: Path) -> None:
    lams = list(range(4, 24))
    lines = problems(write(tmp_path, f"{{name: imaml, inner_lr: 0.5, lam: {lams}}}"))
    assert len(lines) == 4 and "... and 17 more combinations" in lines[-1]


class CheckedParams(LearnerParams):
    depth: int = Field(2, ge=0)

    @field_validator("depth")
    @classmethod
    def _even(cls, depth: int) -> int:
        if depth % 2:
            raise ValueError("depth must be even")
        return depth


@pytest.fixture
def checked_learner() -> Any:
    LEARNERS._entries.pop("t-checked", None)
    LEARNERS.register("t-checked", "a learner with a field validator", CheckedParams)(object)
    yield
    LEARNERS._entries.pop("t-checked", None)


def test_a_field_validator_points_at_the_list_value(tmp_path: Path, checked_learner: Any) -> None:
    (line,) = problems(write(tmp_path, "{name: t-checked, depth: [2, 3, 4]}"))
    assert line == f"{tmp_path / 's.yaml'}:10: learners[1].depth[1]: depth must be even (got 3)"
    (line,) = problems(write(tmp_path, "{name: t-checked, depth: 5}"))
    assert line.endswith("learners[1].depth: depth must be even (got 5)")


def test_cells_carry_the_learners_validated_model(tmp_path: Path) -> None:
    from memcomp.learners.params import ImamlParams

    cells = load_suite(write(tmp_path, "{name: imaml, cg_steps: [3, 7]}")).cells
    models = [c.learner.model for c in cells if c.learner.name == "imaml"]
    assert [type(m) for m in models] == [ImamlParams, ImamlParams]
    assert [m.cg_steps for m in models] == [3, 7]


@pytest.mark.parametrize(
    ("extra", "field", "what"),
    [
        ("executor: {kind: k8s}\n", "executor.kind", "unknown executor 'k8s'"),
        ("executor: {kind: ray, ray: {adress: x}}\n", "executor.ray.adress", "unknown key"),
        ("executor: {cells_per_gpu: 0}\n", "executor.cells_per_gpu", "must be >= 1 (got 0)"),
        ("executor: {slurm: {learners: {imaml: {mem_gb: -1}}}}\n",
         "executor.slurm.learners.imaml.mem_gb", "must be > 0"),
        ("budgets: [{learner: {name: maml}, limit_mb: -1}]\n", "budgets[0].limit_mb",
         "must be > 0 (got -1)"),
        ("budgets: [{learner: {name: maml}, limt_mb: 3}]\n", "budgets[0].limt_mb",
         "did you mean 'limit_mb'"),
        ("budgets: [{learner: {name: maml}, baseline_mb: {gpu: 3}}]\n",
         "budgets[0].baseline_mb.gpu", "unknown memory source 'gpu' (valid: cpu-estimate, cuda)"),
    ],
)  # fmt: skip
def test_executor_and_budgets_are_typed(tmp_path: Path, extra: str, field: str, what: str) -> None:
    path = write(tmp_path, "{name: mrml}", extra)
    (line,) = problems(path)
    assert line.startswith(f"{path}:11: {field}: ") and what in line, line
    assert said("validate", str(path)) == (2, [line])


def test_executor_section_values_are_kept(tmp_path: Path) -> None:
    extra = yaml.safe_dump({"executor": {"kind": "slurm", "slurm": {"partition": "gpu"}}})
    suite = load_suite(write(tmp_path, "{name: mrml}", extra))
    assert suite.executor is not None and suite.executor.kind == "slurm"
    assert suite.executor.section("slurm").partition == "gpu"


def test_budgets_per_memory_source_are_typed_as_memcomp_check_reads_them(tmp_path: Path) -> None:
    per_source = "{learner: {name: maml}, limit_mb: 12, baseline_mb: {cpu-estimate: 11, cuda: 13}}"
    suite = load_suite(write(tmp_path, "{name: mrml}", f"budgets: [{per_source}]\n"))
    assert suite.budgets == [yaml.safe_load(per_source)]
    path = write(
        tmp_path, "{name: mrml}", "budgets: [{learner: {name: maml}, limit_mb: {gpu: 3}}]\n"
    )
    (line,) = problems(path)
    assert said("check", str(path)) == (2, [line])  # validate and check: the same words


def test_the_learner_gets_the_cells_validated_model_itself(tmp_path: Path) -> None:
    """Validated once, at load: the cell's setup and auto execution's probe hand the cell's own
    model instance to the learner (no second validation making a copy on the way)."""
    from memcomp.engine.predict import CellProbe
    from memcomp.engine.setup import setup_cell

    (cell,) = [c for c in load_suite(write(tmp_path, "{name: mrml, cg_steps: 7}")).cells
               if c.learner.name == "mrml"]  # fmt: skip
    setup = setup_cell(cell, torch.device("cpu"))
    assert setup.learner.params is cell.learner.model and setup.learner.params.cg_steps == 7
    assert CellProbe(cell, (1, 8, 8)).pristine.params is cell.learner.model
