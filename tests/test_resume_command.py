"""The command that resumes a run is built from the options the manifest recorded, never by hand:
every option that changes how a run runs is in it, shell-quoted, and running it resumes with
the same options (issue 19: the printed command dropped --slurm-*, --gpus and --jobs)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import fake_learners  # noqa: F401 - registers fake-tiny and the fake learners
import typer
import yaml
from helpers_suite import fake_tiny_suite
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config.run_options import NOT_RUN_OPTIONS, RunOptions, run_option_flags
from memcomp.results.resume import recorded_options, resume_command

runner = CliRunner()


def squash(text: str) -> str:
    return "".join(text.split())


def test_every_run_option_is_a_recorded_run_option() -> None:
    """A new ``memcomp run`` option must be a RunOptions field (so it is recorded and resumed)."""
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    flags = {p.opts[0] for p in run.params if p.name not in NOT_RUN_OPTIONS}
    assert flags == set(run_option_flags().values()) - {"--plugin"}  # --plugin: the app's option


def test_slurm_gpu_and_job_options_are_in_the_resume_command() -> None:
    options = RunOptions.of(
        executor="slurm", slurm_partition="gpu long", slurm_time=240, slurm_array_parallelism=16,
        wait=False, gpus="0,1", cells_per_gpu=2, jobs=3, threads=2, device="cuda",
        ray_address="10.0.0.5:6379", ray_max_retries=4, memory_limit_mb=8000.5,
        isolation="process", only="mrml*", size_check=False, plugins=("my.plugin",),
    )  # fmt: skip
    cmd = resume_command("s.yaml", "res/s/1", options.recorded())
    assert shlex.split(cmd) == [
        "memcomp", "run", "s.yaml", "--resume", "res/s/1", "--device=cuda", "--only=mrml*",
        "--jobs=3", "--memory-limit=8000.5", "--threads=2", "--executor=slurm", "--gpus=0,1",
        "--cells-per-gpu=2", "--ray-address=10.0.0.5:6379", "--ray-max-retries=4",
        "--slurm-partition=gpu long", "--slurm-time=240", "--slurm-array-parallelism=16",
        "--no-wait", "--no-size-check", "--plugin", "my.plugin",
    ]  # fmt: skip
    assert "'--slurm-partition=gpu long'" in cmd and "'--only=mrml*'" in cmd  # quoted
    assert resume_command("s.yaml", "d", RunOptions().recorded()) == "memcomp run s.yaml --resume d"


def test_the_printed_command_resumes_with_the_same_options(tmp_path: Path) -> None:
    suite = tmp_path / "s y.yaml"  # a space: the command must quote it
    learners = [{"name": "fake-ok"}, {"name": "fake-error", "fail_at": 1}]
    suite.write_text(yaml.safe_dump(fake_tiny_suite(learners, name="resumecmd")))
    out = tmp_path / "out"
    given = ["--jobs", "2", "--threads", "1", "--slurm-partition", "gpu a", "--slurm-time", "30",
             "--ray-max-retries", "1", "--memory-limit", "100", "--cells-per-gpu", "2",
             "--no-size-check", "--only", "fake*"]  # fmt: skip
    res = runner.invoke(app, ["--plugin", "fake_learners", "run", str(suite), "--out", str(out),
                              *given])  # fmt: skip
    assert res.exit_code == 1, res.output  # fake-error did not finish ok
    (folder,) = [p.parent for p in out.glob("*/*/manifest.json")]
    expected = shlex.join([
        "memcomp", "run", str(suite), "--resume", str(folder), "--only=fake*", "--jobs=2",
        "--memory-limit=100", "--threads=1", "--cells-per-gpu=2", "--ray-max-retries=1",
        "--slurm-partition=gpu a", "--slurm-time=30", "--no-size-check", "--plugin",
        "fake_learners",
    ])  # fmt: skip
    assert squash(f"re-run them with: {expected}") in squash(res.output)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert resume_command(suite, folder, recorded_options(manifest)) == expected
    args = shlex.split(expected)[1:]  # what a shell gives the command
    args = args[args.index("--plugin") :] + args[: args.index("--plugin")]  # hoisted, as main()
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # the failed cell fails again; the ok one is skipped
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 1
    assert manifest["resumes"][0]["options"] == manifest["options"]  # the same options again
