"""``memcomp check`` on CUDA (issue 17 point 5): measured with CUDA's allocator, judged by the
cuda baseline, --update records it beside the CPU estimate's; budgets/ci.yaml's cuda figure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from test_budgets import quiet

from memcomp.budgets import load_budgets, run_check

ROOT = Path(__file__).resolve().parents[2]
TEXT = (
    "# a cpu-only budget, then recorded on cuda\n"
    "defaults: {dataset: {name: glyphs, image_size: 28}, backbone: {name: conv4, hidden: 16},\n"
    "           setting: {ways: 5, shots: 1, queries: 5}, iterations: 1, tolerance: '+5%'}\n"
    "budgets:\n"
    "  - {learner: {name: mrml, inner_steps: 3, cg_steps: 3}, baseline_mb: 5.0}  # keep me\n"
)


def test_check_on_cuda_records_and_then_judges_the_cuda_baseline(cuda, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(TEXT)
    junit = tmp_path / "j.xml"
    assert run_check(path, device="cuda", junit=junit, console=quiet()) == 0
    skipped = ET.parse(junit).getroot().find("testsuite/testcase/skipped")
    assert skipped is not None and "no cuda baseline" in skipped.get("message")
    assert run_check(path, update=True, device="cuda", console=quiet()) == 0
    [b] = load_budgets(path).budgets
    assert b.baselines["cpu-estimate"] == 5.0 and b.baselines["cuda"] > 0  # both kept
    assert "# keep me" in path.read_text()
    assert run_check(path, device="cuda", junit=junit, console=quiet()) == 0  # repeatable
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.find("properties/property").get("value") == "cuda"
    assert "source=cuda" in suite.find("testcase/system-out").text
    data = yaml.safe_load(path.read_text())
    data["budgets"][0]["baseline_mb"]["cuda"] *= 0.5  # a planted regression on cuda only
    path.write_text(yaml.safe_dump(data))
    assert run_check(path, device="cuda", console=quiet()) == 1


def test_ci_budgets_on_cuda_use_the_measured_mrml_figure(cuda, tmp_path):
    junit = tmp_path / "j.xml"
    rc = run_check(ROOT / "budgets" / "ci.yaml", device="cuda", junit=junit, console=quiet())
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    verdicts = {c.get("name"): "skipped" if c.find("skipped") is not None else
                "failed" if c.find("failure") is not None else "ok" for c in cases}  # fmt: skip
    mrml = {n: v for n, v in verdicts.items() if "mrml" in n}
    assert len(mrml) == 2 and set(mrml.values()) == {"ok"}, verdicts  # 13.27 MB +5%
    assert {v for n, v in verdicts.items() if "mrml" not in n} == {"skipped"}  # no cuda figure
    assert rc == 0
