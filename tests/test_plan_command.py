"""``memcomp plan`` (issue 17, point 3): predicted peaks and auto's choice per cell, no GPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.cli.plan import parse_size
from memcomp.config import expand, load_suite
from memcomp.engine.cell import measure_cell_memory
from memcomp.engine.choose import need_mb
from memcomp.engine.predict import probe_for
from memcomp.errors import InputError

runner = CliRunner()
MB = 2**20
SHAPE = (3, 32, 32)
CHUNK_STATS_BYTES = 4 * 512  # the driver's per-chunk statistics (tests/test_auto_execution.py)


def suite_file(tmp_path: Path, meta_batch: int = 16) -> Path:
    """maml (grows with the chunk) and mrml (one backbone graph) at 32 x 32 RGB, meta-batch 16,
    both with the default execution (auto)."""
    suite = {
        "name": "plan-test", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "synthetic", "image_size": 32, "channels": 3,
                      "images_per_class": 4, "train_classes": 4, "val_classes": 3,
                      "test_classes": 3}],
        "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 8, "blocks": 2}],
        "train": {"iterations": 2, "meta_batch": meta_batch, "eval_every": 2, "val_episodes": 2},
        "test": {"episodes": 2},
        "learners": [{"name": "maml", "inner_steps": 5}, {"name": "mrml", "inner_steps": 2,
                                                           "cg_steps": 2}],
    }  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def plan_json(*args: str) -> tuple[int, dict[str, Any]]:
    res = runner.invoke(app, ["plan", *args, "--json"])
    return res.exit_code, json.loads(res.stdout)


def by_learner(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["learner"].split("(")[0]: r for r in doc["cells"]}


def test_a_small_gpu_gets_a_smaller_maml_chunk_and_the_same_mrml(tmp_path: Path) -> None:
    path = suite_file(tmp_path)
    maml, mrml = expand(load_suite(path))
    probe = probe_for(maml, SHAPE)
    small = (need_mb(probe.predict("batched", 4)) + need_mb(probe.predict("batched", 5))) / 2
    mrml_need = need_mb(probe_for(mrml, SHAPE).predict("batched", 16))
    assert mrml_need < small  # mrml's whole meta-batch fits even the small card

    code, big_plan = plan_json(str(path), "--device", "cuda", "--gpu-memory", "40GB")
    assert code == 0 and big_plan["budget_mb"] == 40 * 1024
    code, small_plan = plan_json(str(path), "--device", "cuda", "--gpu-memory", f"{small:.3f}MB")
    assert code == 0
    big, little = by_learner(big_plan), by_learner(small_plan)
    assert (big["maml"]["execution"], big["maml"]["task_chunk"]) == ("batched", 16)
    assert (little["maml"]["execution"], little["maml"]["task_chunk"]) == ("batched", 4)
    for plan in (big, little):
        assert (plan["mrml"]["execution"], plan["mrml"]["task_chunk"]) == ("batched", 16)
        assert plan["mrml"]["fits"] is True
    assert little["maml"]["need_mb"] <= little["maml"]["budget_mb"]

    # the predicted values are the CPU estimate's on real CPU tensors (tolerance: the driver's
    # per-chunk statistics, 512-byte blocks, in the chunks after the second)
    real = expand(load_suite(_explicit(path, tmp_path, task_chunk=4)))
    measured = measure_cell_memory(real[0], "cpu")
    gap = measured.peak_mb - little["maml"]["predicted_peak_mb"]
    rounding = 0.0005 * MB  # the plan rounds to 0.001 MB
    assert -rounding <= gap * MB <= CHUNK_STATS_BYTES * (16 // 4 - 2) + rounding
    assert little["maml"]["predicted_baseline_mb"] == pytest.approx(measured.baseline_mb, abs=1e-3)
    measured = measure_cell_memory(real[1], "cpu")
    assert little["mrml"]["predicted_peak_mb"] == pytest.approx(measured.peak_mb, abs=1e-3)


def _explicit(path: Path, tmp_path: Path, task_chunk: int) -> Path:
    """The suite with the chosen executions written out (maml chunked, mrml whole)."""
    suite = yaml.safe_load(path.read_text())
    suite["learners"][0].update(execution="batched", task_chunk=task_chunk)
    suite["learners"][1].update(execution="batched")
    out = tmp_path / "explicit.yaml"
    out.write_text(yaml.safe_dump(suite))
    return out


def test_exit_1_names_the_cells_that_do_not_fit(tmp_path: Path) -> None:
    res = runner.invoke(app, ["plan", str(suite_file(tmp_path, 4)), "--device", "cuda",
                              "--gpu-memory", "256MB"])  # fmt: skip
    assert res.exit_code == 1
    out = " ".join(res.stdout.split())
    assert "does not fit even sequentially" in out and "does not fit:" in out


def test_cpu_plan_csv_and_table(tmp_path: Path) -> None:
    csv_path = tmp_path / "plan.csv"
    res = runner.invoke(app, ["plan", str(suite_file(tmp_path, 4)), "--device", "cpu",
                              "--csv", str(csv_path)], env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.stdout
    assert "sequential" in res.stdout and "batched 4/4" in res.stdout
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("cell_id,learner,") and len(lines) == 3
    assert ",sequential,1," in lines[1] and ",batched,4," in lines[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda", "--gpu-memory", "40XB"], "--gpu-memory: '40XB' is not a size"),
        (["--device", "cpu", "--gpu-memory", "4GB"], "--gpu-memory applies to --device cuda"),
        (["--device", "cuda", "--gpu-memory", "0GB"], "must be more than 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["plan", str(suite_file(tmp_path, 2)), *args])
    assert res.exit_code == 2
    err = res.stderr if res.stderr_bytes is not None else res.output
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cuda_without_a_gpu_needs_a_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = runner.invoke(app, ["plan", str(suite_file(tmp_path, 2)), "--device", "cuda"])
    assert res.exit_code == 2 and "--gpu-memory SIZE" in res.output


def test_sizes() -> None:
    assert parse_size("40GB") == parse_size("40 GiB") == parse_size("40g") == 40 * 2**30
    assert parse_size("40960MB") == parse_size("40960") == 40 * 2**30
    assert parse_size("0.5TB") == 2**39 and parse_size("512B") == 512
    for bad in ("40XB", "", "GB", "-1GB", "4 0GB", "1ib"):
        with pytest.raises(InputError):
            parse_size(bad)


def test_help_has_examples() -> None:
    res = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "memcomp plan suites/paper-accuracy.yaml --device cuda --gpu-memory 40GB" in res.stdout
