"""Preflight: every problem of a suite and its run options at once, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny, fake-missing and the fake learners
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import SuiteError, expand, load_suite, suite_from_dict
from memcomp.exec.plan import check_output, preflight
from memcomp.measure.device import check_device

SUITE = """\
name: pre
device: cpu
datasets:
  - {name: fake-tiny, classes: 4}
  - {name: fake-missing}
settings:
  - {ways: 3, shots: 1, queries: 2}
  - {ways: 5, shots: 1, queries: 2}
  - {ways: 2, shots: 5, queries: 5}
backbones:
  - {name: conv4, hidden: 4}
  - {name: conv4, hidden: 4, blocks: 6}
train: {iterations: 2, meta_batch: 1, eval_every: 1, val_episodes: 1}
test: {episodes: 2}
learners:
  - {name: fake-ok}
"""


def load(tmp_path: Path, text: str = SUITE) -> tuple[Any, list[Any], Path]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    suite = load_suite(path)
    return suite, expand(suite), path


def test_all_problems_reported_together_with_lines(tmp_path: Path) -> None:
    suite, cells, path = load(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SuiteError) as info:
        preflight(suite, cells, device="cuda:7", out=blocker, jobs=0, memory_limit_mb=-5)
    text = str(info.value)
    lines = text.splitlines()
    expected = [
        f"{path}:5: datasets[1]: dataset 'fake-missing' cannot be "
        "loaded: dataset 'fake-missing' not found under /nonexistent/fake-missing",
        f"{path}:8: settings[1]: dataset 'fake-tiny': split 'train' has 4 classes, fewer than "
        "ways=5; lower `ways` in the suite's settings",
        f"{path}:9: settings[2]: dataset 'fake-tiny': split 'train' has only 0 classes with >= "
        "shots+queries=10 images (need 2); lower shots or queries",
        "command line: --jobs: must be >= 1 (got 0)",
        "command line: --memory-limit: must be a number of MB > 0 (got -5)",
        "command line: --out: ",
    ]
    for e in expected:
        assert any(line.startswith(e) for line in lines), (e, text)
    assert any(line.startswith(f"{path}:12: backbones[1]: backbone conv4(") for line in lines)
    assert "too small for 6 pooling blocks" in text
    assert any("--device" in line for line in lines)
    assert len(lines) == 8, text  # each problem once, no duplicates per cell


def test_cli_exit_2_and_nothing_written(tmp_path: Path) -> None:
    _, _, path = load(tmp_path)
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 2
    flat = " ".join(res.output.split())
    assert "settings[1]" in flat and "datasets[1]" in flat and "backbones[1]" in flat
    assert not out.exists()
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--dry-run"])
    assert res.exit_code == 2 and not out.exists()


def test_valid_suite_passes_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    text = SUITE.replace("  - {name: fake-missing}\n", "").replace(
        "  - {ways: 5, shots: 1, queries: 2}\n  - {ways: 2, shots: 5, queries: 5}\n", ""
    )
    text = text.replace("  - {name: conv4, hidden: 4, blocks: 6}\n", "")
    suite, cells, path = load(tmp_path, text)
    plan = preflight(suite, cells, out=tmp_path / "r", isolation="inline")
    assert plan.device == torch.device("cpu") and plan.resume_dir is None
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "r").exists()


def test_option_checks() -> None:
    dev, why = check_device("cuda:0")
    if not torch.cuda.is_available():
        assert dev is None and "no CUDA GPU" in str(why)
    assert check_device("tpu")[1] == "must be auto, cpu, cuda or cuda:N (got 'tpu')"
    assert check_device("cpu") == (torch.device("cpu"), None)


def test_output_checks(tmp_path: Path) -> None:
    assert check_output(tmp_path / "new" / "deeper", "s") is None
    (tmp_path / "f").write_text("")
    assert "is not a folder" in str(check_output(tmp_path / "f", "s"))
    assert "outside" in str(check_output(tmp_path, "../up"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("root ignores folder permissions")
        assert "not writable" in str(check_output(ro, "s"))
    finally:
        ro.chmod(0o700)


def test_inline_with_jobs_and_unknown_isolation(tmp_path: Path) -> None:
    suite, cells, _ = load(tmp_path, SUITE.replace("  - {name: fake-missing}\n", ""))
    with pytest.raises(SuiteError) as info:
        preflight(suite, cells, jobs=2, isolation="inline", check_data=False)
    assert "--jobs: must be 1 with --isolation inline" in str(info.value)
    with pytest.raises(SuiteError, match="--isolation: must be one of process, inline"):
        preflight(suite, cells, isolation="thread", check_data=False)


BASE: dict[str, Any] = yaml.safe_load(SUITE)
BASE["datasets"] = [{"name": "fake-tiny", "classes": 4}]
BASE["backbones"] = [{"name": "conv4", "hidden": 4}]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ways=st.integers(-1, 7),
    shots=st.integers(-1, 7),
    queries=st.integers(-1, 4),
    classes=st.integers(0, 6),
    per_class=st.integers(0, 8),
    image_size=st.integers(0, 40),
    blocks=st.integers(0, 9),
)
def test_random_settings_never_crash_preflight(
    ways: int, shots: int, queries: int, classes: int, per_class: int, image_size: int, blocks: int
) -> None:
    """Random sizes: either the suite runs, or SuiteError names a field; nothing else escapes."""
    data = {
        **BASE,
        "settings": [{"ways": ways, "shots": shots, "queries": queries}],
        "datasets": [
            {
                "name": "fake-tiny",
                "classes": classes,
                "per_class": per_class,
                "image_size": image_size,
            }  # fmt: skip
        ],
        "backbones": [{"name": "conv4", "hidden": 2, "blocks": blocks}],
    }
    try:
        suite = suite_from_dict(data)
        preflight(suite, expand(suite), check_data=True)
    except SuiteError as e:
        assert e.exit_code == 2
        assert all(p.field for p in e.problems), str(e)
        return
    assert ways >= 2 and shots >= 1 and queries >= 1 and classes >= ways
    assert per_class >= shots + queries and image_size >= 2**blocks


def test_problems_inside_parts_point_at_the_part(tmp_path: Path) -> None:
    text = SUITE.replace("  - {name: fake-missing}\n", "").replace(
        "  - {ways: 5, shots: 1, queries: 2}\n  - {ways: 2, shots: 5, queries: 5}\n", ""
    )
    text = text.replace("  - {name: conv4, hidden: 4, blocks: 6}\n", "")
    text += "parts:\n  - {name: a}\n  - name: b\n    settings:\n      - {ways: 2, shots: 1, queries: 2}\n      - {ways: 6, shots: 1, queries: 2}\n"  # noqa: E501
    suite, cells, path = load(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        preflight(suite, cells)
    line = text.splitlines().index("      - {ways: 6, shots: 1, queries: 2}") + 1
    assert str(info.value).startswith(f"{path}:{line}: parts[1].settings[1]: dataset 'fake-tiny'")
