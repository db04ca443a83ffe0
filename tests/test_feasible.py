"""Issue 13 (8): ``validate`` refuses what cannot run on the built-in datasets, without loading
any data: more ways than a split has classes, more shots+queries than a class has images, images
too small for the backbone's pooling. ``run`` reports the same before loading anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fake_learners  # noqa: F401 - registers fake-ok
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.config import load_suite
from memcomp.config.feasible import feasibility_problems

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

INFEASIBLE = """\
name: infeasible
seeds: [0]
device: cpu
datasets:
  - {name: glyphs, image_size: 8}
settings:
  - {ways: 60, shots: 1, queries: 5}
  - {ways: 5, shots: 10, queries: 15}
  - {ways: 5, shots: 1, queries: 5}
backbones:
  - {name: conv4}
  - {name: resnet12}
  - {name: conv4, blocks: 3}
learners:
  - {name: fake-ok}
"""


def flat(text: str) -> str:
    return " ".join(text.split())


def test_validate_reports_every_infeasible_setting_and_backbone(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(INFEASIBLE)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    out = flat(res.output)
    assert "Traceback" not in res.output and "is valid" not in out
    for line, field, text in [
        (
            7,
            "settings[0]",
            "dataset 'glyphs': split 'val' has at most 57 classes, fewer than ways=60",
        ),
        (
            7,
            "settings[0]",
            "dataset 'glyphs': split 'test' has at most 56 classes, fewer than ways=60",
        ),
        (
            8,
            "settings[1]",
            "dataset 'glyphs': classes have at most 20 images, fewer than shots+queries=25",
        ),
        (
            11,
            "backbones[0]",
            "backbone 'conv4' on 'glyphs' images (1, 8, 8): images 8x8 are too small",
        ),
        (12, "backbones[1]", "backbone 'resnet12' on 'glyphs' images (1, 8, 8)"),
    ]:
        assert f"{path}:{line}: {field}: {text}" in out, (line, field, out)
    assert "needs at least 16x16" in out
    assert "backbones[2]" not in out and "settings[2]" not in out  # 3 blocks take 8x8: fine
    problems = feasibility_problems(load_suite(path))
    assert len(problems) == 5  # each problem once although several cells share it


def test_fixed_suite_validates(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        INFEASIBLE.replace("image_size: 8", "image_size: 16")
        .replace("ways: 60", "ways: 50")
        .replace("shots: 10", "shots: 5")
    )
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "is valid (9 cells)" in flat(res.output)


def test_validate_checks_without_torch_or_data(tmp_path: Path) -> None:
    """The checks are declarations: validate imports no torch and loads no dataset."""
    path = tmp_path / "s.yaml"
    path.write_text(INFEASIBLE.replace("  - {name: fake-ok}", "  - {name: maml}"))
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from memcomp.cli import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(path)!r}])\n"
        "assert r.exit_code == 2, r.output\n"
        "assert 'torch' not in sys.modules, 'validate imported torch'\n"
        "assert 'memcomp.data.glyphs' not in sys.modules, 'validate loaded glyphs'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_run_refuses_before_loading_data(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(INFEASIBLE)
    out = tmp_path / "results"
    res = runner.invoke(app, ["run", str(path), "--out", str(out), "--dry-run"])
    assert res.exit_code == 2, res.output
    text = flat(res.output)
    assert f"{path}:7: settings[0]: dataset 'glyphs': split 'val'" in text
    assert f"{path}:11: backbones[0]: backbone 'conv4'" in text
    assert not out.exists()


def test_problems_in_a_part_point_at_the_part(tmp_path: Path) -> None:
    text = (
        "name: parts\n"  # 1
        "device: cpu\n"  # 2
        "learners: [{name: fake-ok}]\n"  # 3
        "backbones: [{name: conv4}]\n"  # 4
        "parts:\n"  # 5
        "  - datasets: [{name: glyphs}]\n"  # 6
        "    settings: [{ways: 5}]\n"  # 7
        "  - datasets: [{name: synthetic, train_classes: 3, image_size: 84}]\n"  # 8
        "    settings: [{ways: 5, shots: 1, queries: 1}]\n"  # 9
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    [p] = feasibility_problems(load_suite(path))
    assert (p.line, p.field) == (9, "parts[1].settings[0]")
    assert "split 'train' has at most 3 classes, fewer than ways=5" in p.message
