"""Issue 17 point 5: a budget keeps a baseline per memory source (cpu-estimate, cuda).

``memcomp check`` judges by the numbers of the source it measures (the CPU estimate here, CUDA
on a GPU: mocked here, real in tests/gpu/test_budgets_gpu.py), says which in its table and JUnit,
and ``--update`` writes only that source's baseline, keeping the other's and the comments. Old
single-baseline files keep their meaning.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from test_budgets import TINY, FakeMeasure, quiet, write

import memcomp.budgets.measure as budget_measure
from memcomp.budgets import load_budgets, parse_budgets, rewrite_baselines, run_check
from memcomp.config import ConfigError
from memcomp.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
FLOW = yaml.safe_dump(TINY, default_flow_style=True).strip()
BOTH = (
    "# budgets with both sources\n"
    f"defaults: {FLOW}\n"
    "budgets:\n"
    "  # mrml: both sources\n"
    "  - {learner: {name: mrml}, tolerance: '+5%', baseline_mb: {cpu-estimate: 10.0, cuda: 12.0}}\n"
    "  - learner: {name: anil}   # cpu only\n"
    "    tolerance: '+5%'\n"
    "    baseline_mb: 20.0\n"
)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA GPU as `memcomp check` sees it (the measurement itself is a FakeMeasure)."""
    monkeypatch.setattr(budget_measure, "_cuda_available", lambda: True)


def recording_console() -> Console:
    return Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115


def test_plain_numbers_keep_their_stated_source_and_mappings_name_theirs():
    bf = parse_budgets(
        {
            "budgets": [
                {"learner": {"name": "mrml"}, "limit_mb": 12, "baseline_mb": 11.4},  # old file
                {"learner": {"name": "mrml"}, "limit_mb": 12, "source": "cuda"},  # as stated
                {
                    "learner": {"name": "maml"},
                    "tolerance": "+5%",
                    "limit_mb": {"cuda": 30},
                    "baseline_mb": {"cpu-estimate": 16.0, "cuda": 20.0},
                },
            ]
        }
    )
    old, cuda, both = bf.budgets
    assert (old.limits, old.baselines) == ({"cpu-estimate": 12.0}, {"cpu-estimate": 11.4})
    assert (cuda.limits, cuda.baselines) == ({"cuda": 12.0}, {})
    assert both.baselines == {"cpu-estimate": 16.0, "cuda": 20.0}
    assert both.allowed_mb("cpu-estimate") == pytest.approx(16.8)
    assert both.allowed_mb("cuda") == pytest.approx(21.0)  # min(30, 20 * 1.05)
    assert not cuda.has_numbers("cpu-estimate") and cuda.has_numbers("cuda")
    assert parse_budgets(yaml.safe_load(BOTH)).budgets[1].baselines == {"cpu-estimate": 20.0}


def test_a_bad_source_key_is_file_line_field(tmp_path):
    path = write(tmp_path, BOTH.replace("cuda: 12.0", "cudda: 12.0"))
    with pytest.raises(ConfigError) as e:
        load_budgets(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "cudda" in t)
    assert str(e.value) == (
        f"{path}:{line}: budgets[0].baseline_mb.cudda: unknown memory source 'cudda'; did you mean "
        "'cuda'? (valid: cpu-estimate, cuda)"
    )


def test_on_the_cpu_both_baselines_are_judged_by_the_cpu_estimate(tmp_path):
    path = write(tmp_path, BOTH)
    fake = FakeMeasure({"mrml": 10.4, "anil": 20.9})  # within the CPU bounds, not the cuda one
    con = recording_console()
    junit = tmp_path / "j.xml"
    assert run_check(path, junit=junit, device="cpu", console=con, measure=fake) == 0
    assert fake.calls == [("mrml", "cpu", 1, "cpu-estimate"), ("anil", "cpu", 1, "cpu-estimate")]
    text = " ".join(con.export_text().split())
    assert "(memory source cpu-estimate, on cpu)" in text and "10.500" in text  # 10 * 1.05
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.find("properties/property").attrib == {
        "name": "memory_source",
        "value": "cpu-estimate",
    }
    fake = FakeMeasure({"mrml": 11.0, "anil": 20.0})  # over 10.5 (cpu), under 12.6 (cuda)
    assert run_check(path, device="cpu", console=quiet(), measure=fake) == 1


def test_on_cuda_the_cuda_baseline_is_used_and_cpu_only_budgets_say_so(tmp_path, fake_cuda):
    path = write(tmp_path, BOTH)
    fake = FakeMeasure({"mrml": 12.5, "anil": 1000.0})  # over the CPU baseline, under 12.6
    con = recording_console()
    junit = tmp_path / "j.xml"
    for device in ("cuda", "auto"):  # auto measures where the GPU is
        fake.calls.clear()
        assert run_check(path, junit=junit, device=device, console=con, measure=fake) == 0
        assert fake.calls == [("mrml", "cuda", 1, "cuda")]  # the cpu-only budget: not measured
    text = " ".join(con.export_text().split())
    assert "(memory source cuda, on cuda)" in text and "12.600" in text
    assert "no cuda baseline" in text and "1 within budget" in text and "1 skipped" in text
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.find("properties/property").get("value") == "cuda"
    mrml, anil = suite.findall("testcase")
    assert "source=cuda" in mrml.find("system-out").text
    assert "no cuda baseline" in anil.find("skipped").get("message")
    fake = FakeMeasure({"mrml": 12.7, "anil": 1.0})
    assert run_check(path, junit=junit, device="cuda", console=quiet(), measure=fake) == 1
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert "cuda baseline 12 +5%" in failure.get("message") and "source: cuda" in failure.text


def test_a_measurement_of_the_other_source_is_never_judged(tmp_path, fake_cuda):
    class WrongSource(FakeMeasure):
        def __call__(self, cell, device, iterations, source):
            return super().__call__(cell, device, iterations, "cpu-estimate")

    path = write(tmp_path, BOTH)
    wrong = WrongSource({"mrml": 1.0, "anil": 1.0})
    assert run_check(path, device="cuda", console=quiet(), measure=wrong) == 1


def test_update_writes_the_measured_source_and_keeps_the_other_and_comments(tmp_path, fake_cuda):
    path = write(tmp_path, BOTH)
    fake = FakeMeasure({"mrml": 12.345, "anil": 25.5})
    assert run_check(path, update=True, device="cuda", console=quiet(), measure=fake) == 0
    new = path.read_text()
    assert new.splitlines()[0] == "# budgets with both sources"
    assert "  # mrml: both sources\n" in new and "# cpu only" in new
    got = [b.baselines for b in load_budgets(path).budgets]
    assert got == [{"cpu-estimate": 10.0, "cuda": 12.345}, {"cpu-estimate": 20.0, "cuda": 25.5}]
    assert "baseline_mb: {cpu-estimate: 20.0, cuda: 25.500}" in new  # plain -> both, as written
    fake = FakeMeasure({"mrml": 9.0, "anil": 21.0})
    assert run_check(path, update=True, device="cpu", console=quiet(), measure=fake) == 0
    got = [b.baselines for b in load_budgets(path).budgets]
    assert got == [{"cpu-estimate": 9.0, "cuda": 12.345}, {"cpu-estimate": 21.0, "cuda": 25.5}]
    assert run_check(path, device="cuda", console=quiet(), measure=FakeMeasure({
        "mrml": 12.345, "anil": 25.5})) == 0  # fmt: skip


def test_update_of_a_source_without_numbers_records_it(tmp_path, fake_cuda):
    text = (
        f"defaults: {FLOW}\n"
        "budgets:\n"
        "  - {learner: {name: mrml}, limit_mb: 12.0, baseline_mb: 11.4}  # cpu limit\n"
    )
    path = write(tmp_path, text)
    assert run_check(path, device="cuda", console=quiet(), measure=FakeMeasure({})) == 0
    fake = FakeMeasure({"mrml": 13.27})
    assert run_check(path, update=True, device="cuda", console=quiet(), measure=fake) == 0
    [b] = load_budgets(path).budgets
    assert b.limits == {"cpu-estimate": 12.0}  # the CPU limit never applies to cuda
    assert b.baselines == {"cpu-estimate": 11.4, "cuda": 13.27}
    assert "# cpu limit" in path.read_text()


def test_rewrite_baselines_per_source_in_every_layout():
    text = (
        "budgets:\n"
        "  - {learner: {name: a}, baseline_mb: 1.0}  # plain, stated cpu-estimate\n"
        "  - {learner: {name: b}, baseline_mb: {cpu-estimate: 2.0}}\n"
        "  - {learner: {name: c}, baseline_mb: {cpu-estimate: 3.0, cuda: 3.5}}\n"
        "  - {learner: {name: d}}\n"
        "  - learner: {name: e}\n"
        "    baseline_mb:\n"
        "      cpu-estimate: 5.0   # block\n"
        "  - learner: {name: f}\n"
        "    source: cuda\n"
        "    baseline_mb: 6.0\n"
    )
    values = {0: 10.0, 1: 20.0, 2: 30.0, 3: 40.0, 4: 50.0, 5: 60.0}
    stated = {i: "cuda" if i == 5 else "cpu-estimate" for i in values}
    out = rewrite_baselines(text, values, source="cuda", stated=stated)
    assert out == (
        "budgets:\n"
        "  - {learner: {name: a}, baseline_mb: {cpu-estimate: 1.0, cuda: 10.000}}  # plain, "
        "stated cpu-estimate\n"
        "  - {learner: {name: b}, baseline_mb: {cpu-estimate: 2.0, cuda: 20.000}}\n"
        "  - {learner: {name: c}, baseline_mb: {cpu-estimate: 3.0, cuda: 30.000}}\n"
        "  - {learner: {name: d}, baseline_mb: {cuda: 40.000}}\n"
        "  - learner: {name: e}\n"
        "    baseline_mb:\n"
        "      cpu-estimate: 5.0   # block\n"
        "      cuda: 50.000\n"
        "  - learner: {name: f}\n"
        "    source: cuda\n"
        "    baseline_mb: 60.000\n"
    )
    again = rewrite_baselines(out, {0: 1.5, 4: 5.5}, source="cpu-estimate", stated=stated)
    loaded = yaml.safe_load(again)["budgets"]
    assert loaded[0]["baseline_mb"] == {"cpu-estimate": 1.5, "cuda": 10.0}
    assert loaded[4]["baseline_mb"] == {"cpu-estimate": 5.5, "cuda": 50.0}


def test_ci_budgets_keep_the_measured_cuda_figure_only_for_mrml():
    bf = load_budgets(ROOT / "budgets" / "ci.yaml")
    cuda = {b.label.split(" |")[0]: b.baselines.get("cuda") for b in bf.budgets}
    assert cuda == {
        "mrml K=5": 13.27,
        "mrml K=20": 13.27,
        "maml K=1": None,
        "maml K=5": None,
        "anil(features=once) K=5": None,
    }
    assert all(b.limits == {"cpu-estimate": 12.0} for b in bf.budgets if "mrml" in b.label)
    text = (ROOT / "budgets" / "ci.yaml").read_text()
    assert "issue 17" in text and "H200" in text  # where the cuda figure came from


def test_check_on_cuda_without_a_gpu_is_exit_2(tmp_path):
    path = write(tmp_path, BOTH)
    if budget_measure._cuda_available():
        pytest.skip("a CUDA GPU is visible")
    with pytest.raises(InputError, match="no CUDA GPU"):
        run_check(path, device="cuda", console=quiet(), measure=FakeMeasure({}))


def test_the_readme_example_is_a_valid_budget_file():
    text = (ROOT / "README.md").read_text()
    start = text.index("source: cpu-estimate     #")
    example = yaml.safe_load(text[start : text.index("```", start)])
    mrml, maml, anil = parse_budgets(example).budgets
    assert mrml.allowed_mb("cuda") == pytest.approx(13.27 * 1.05)
    assert mrml.allowed_mb("cpu-estimate") == pytest.approx(11.413 * 1.05)  # under the 12 MB
    assert not maml.has_numbers("cuda") and anil.allowed_mb("cuda") == 20.0
