"""The ``executor:`` suite section and the run options over it: merged key by key, recorded in
the manifest, and every mistake one exit-2 line naming the file:line or the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny / fake-ok
import pytest
import yaml
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import SuiteError, load_suite
from memcomp.exec.executor_options import parse_gpus, resolve_executor


def write(tmp_path: Path, executor: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "name": "exec-opts", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "fake-tiny"}], "settings": [{"ways": 3, "shots": 1, "queries": 2}],
        "backbones": [{"name": "conv4", "hidden": 4}],
        "train": {"iterations": 2, "meta_batch": 2, "eval_every": 2, "val_episodes": 2},
        "test": {"episodes": 3}, "learners": [{"name": "fake-ok"}],
    }  # fmt: skip
    if executor is not None:
        data["executor"] = executor
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: str) -> Any:
    res = CliRunner().invoke(app, ["run", *args])
    res.text = " ".join(res.output.split())  # undo rich's wrapping
    return res


def test_suite_section_and_overrides_merge_key_by_key(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, {"kind": "slurm", "slurm": {
        "partition": "gpu", "mem_gb": 16, "learners": {"imaml": {"mem_gb": 64}}}}))  # fmt: skip
    opts = resolve_executor(suite, {"slurm.time_min": 90, "ray.address": None})
    assert opts.kind == "slurm" and opts.slurm.partition == "gpu" and opts.slurm.time_min == 90
    assert opts.slurm.resources_for("imaml")["mem_gb"] == 64
    assert opts.slurm.resources_for("maml")["mem_gb"] == 16
    assert resolve_executor(suite, {"kind": "local"}).kind == "local"
    assert suite.executor is not None and suite.executor.section("slurm").time_min is None
    assert suite.executor.section("slurm").partition == "gpu"  # the suite's own is not changed


def test_bad_section_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, {"kind": "k8s", "cells_per_gpu": 0})
    with pytest.raises(SuiteError) as e:
        load_suite(path)  # the suite model types the section: validate says it too
    lines = str(e.value).splitlines()
    assert len(lines) == 2
    assert any(f"{path}:" in ln and "executor.kind: unknown executor 'k8s'" in ln for ln in lines)
    assert any("executor.cells_per_gpu: must be >= 1 (got 0)" in ln for ln in lines)
    res = run(str(path), "--dry-run")
    assert res.exit_code == 2 and "executor.kind" in res.text


def test_a_bad_command_line_value_names_the_option(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, {"kind": "ray"}))
    with pytest.raises(SuiteError, match=r"^command line: --ray-max-retries: must be <= 20"):
        resolve_executor(suite, {"ray.max_retries": 99}, {"ray.max_retries": "--ray-max-retries"})
    with pytest.raises(SuiteError, match=r"executor\.ray\.max_retries: .* \(from the command line"):
        resolve_executor(suite, {"ray.max_retries": 99})  # no flag known: at the suite's field
    res = run(str(write(tmp_path)), "--executor", "k9s", "--dry-run")
    assert res.exit_code == 2 and "command line: --executor: unknown executor 'k9s'" in res.text


def test_option_mistakes_exit_2_before_anything_is_written(tmp_path: Path) -> None:
    path = write(tmp_path)
    out = tmp_path / "out"
    res = run(str(path), "--out", str(out), "--gpus", "0,x")
    assert res.exit_code == 2 and "'x' is not a GPU index" in res.text
    res = run(str(path), "--out", str(out), "--gpus", "0", "--dry-run")
    assert res.exit_code == 2 and "--gpus: needs --device cuda" in res.text
    res = run(str(path), "--out", str(out), "--executor", "ray", "--device", "auto")
    assert res.exit_code == 2 and "say cpu or cuda with --executor ray" in res.text
    res = run(str(path), "--out", str(out), "--executor", "nope")
    assert res.exit_code == 2 and "--executor" in res.text
    assert not out.exists()


def test_parse_gpus() -> None:
    assert parse_gpus("all") == "all" and parse_gpus("0, 2,3") == [0, 2, 3]
    with pytest.raises(ValueError, match="twice"):
        parse_gpus("1,1")


def test_manifest_records_the_options_and_the_executor(tmp_path: Path) -> None:
    import json

    res = run(str(write(tmp_path)), "--out", str(tmp_path / "o"), "--isolation", "inline")
    assert res.exit_code == 0, res.output
    manifest = json.loads(next((tmp_path / "o").glob("*/*/manifest.json")).read_text())
    assert manifest["options"]["isolation"] == "inline" and manifest["options"]["executor"] is None
    assert manifest["execution"]["executor"]["kind"] == "local"
    assert manifest["execution"]["gpus"] is None
