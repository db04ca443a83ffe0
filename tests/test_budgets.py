"""``memcomp check``: budget parsing, verdicts, JUnit, --update, and a real planted regression."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from torch import nn

from memcomp.budgets import load_budgets, parse_budgets, rewrite_baselines, run_check
from memcomp.errors import InputError
from memcomp.learners import LEARNERS
from memcomp.learners.maml import Maml
from memcomp.learners.mrml import Mrml
from memcomp.measure.memory import MemoryResult
from memcomp.registry import Entry

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": {"name": "glyphs", "image_size": 28},
    "backbone": {"name": "conv4", "hidden": 16},
    "setting": {"ways": 5, "shots": 1, "queries": 5},
    "meta_batch": 1,
    "iterations": 1,
}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115


def write(tmp_path: Path, data: dict | str, name: str = "b.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


class FakeMeasure:
    """Returns a preset peak per learner name and counts calls."""

    def __init__(self, peaks: dict[str, float | Exception]) -> None:
        self.peaks, self.calls = peaks, []

    def __call__(self, cell, device, iterations, source) -> MemoryResult:
        self.calls.append((cell.learner.name, device, iterations, source))
        got = self.peaks[cell.learner.name]
        if isinstance(got, Exception):
            raise got
        return MemoryResult(source, device, got, 1.0, None, {})


# ----------------------------------------------------------------------------- parsing


def test_parse_resolves_defaults_and_overrides():
    bf = parse_budgets(
        {
            "defaults": {**TINY, "tolerance": "+5%"},
            "budgets": [
                {"learner": {"name": "mrml", "inner_steps": 7}, "limit_mb": 3},
                {
                    "learner": {"name": "maml"},
                    "backbone": {"hidden": 8},
                    "setting": {"shots": 2},
                    "baseline_mb": 10.0,
                    "source": "cuda",
                },
            ],
        },
        "x.yaml",
    )
    a, b = bf.budgets
    assert a.cell.learner.name == "mrml" and a.cell.learner.params["inner_steps"] == 7
    assert a.cell.backbone.params["hidden"] == 16 and a.iterations == 1
    assert a.allowed_mb("cpu-estimate") == 3 and a.source == "cpu-estimate"
    assert a.allowed_mb("cuda") is None  # a plain number is the stated source's only
    assert b.cell.backbone.params["hidden"] == 8 and b.cell.setting.shots == 2
    assert b.cell.setting.ways == 5 and b.source == "cuda"
    assert b.allowed_mb("cuda") == pytest.approx(10.5) and b.baselines == {"cuda": 10.0}
    assert a.label.startswith("mrml K=7 | glyphs 28px 5w1s5q")


def test_tolerance_in_mb_and_tightest_bound():
    entry = {"learner": {"name": "anil"}, "limit_mb": 9, "baseline_mb": 8, "tolerance": "+2 MB"}
    bf = parse_budgets({"budgets": [entry]})
    assert bf.budgets[0].allowed_mb("cpu-estimate") == 9.0
    bf = parse_budgets(
        {"budgets": [{"learner": {"name": "anil"}, "baseline_mb": 8, "tolerance": "0.5MB"}]}
    )
    assert bf.budgets[0].allowed_mb("cpu-estimate") == 8.5


@pytest.mark.parametrize(
    ("budget", "where", "what"),
    [
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "limt": 2}, "budgets[0].limt", "unknown key"),
        ({"learner": {"name": "mrml", "inner_steps": -1}, "limit_mb": 1},
         "budgets[0].learner.inner_steps", "must be >= 0 (got -1)"),
        ({"learner": {"name": "mamll"}, "limit_mb": 1}, "budgets[0].learner.name",
         "unknown learner 'mamll'; did you mean 'maml'?"),
        ({"learner": {"name": "mrml", "inner_steps": [1, 2]}, "limit_mb": 1},
         "budgets[0].learner.inner_steps", "must be an integer (got a list)"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "meta_batch": 10**9},
         "budgets[0].meta_batch", "must be <= 100000"),
        ({"learner": {"name": "mrml"}}, "budgets[0]", "limit_mb and/or tolerance"),
        ({"learner": {"name": "mrml"}, "tolerance": "+5%"}, "budgets[0].baseline_mb", "--update"),
        ({"learner": {"name": "mrml"}, "tolerance": "5 percent", "baseline_mb": 1},
         "budgets[0].tolerance", "should match pattern"),
        ({"learner": {"name": "mrml"}, "limit_mb": -3}, "budgets[0].limit_mb",
         "must be > 0 (got -3)"),
        ({"limit_mb": 3}, "budgets[0].learner", "required"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "setting": {"ways": 1}},
         "budgets[0].setting.ways", "must be >= 2 (got 1)"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "backbone": {"name": "conv4", "hid": 3}},
         "budgets[0].backbone.hid", "unknown key"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "baseline_mb": {"gpu": 1}},
         "budgets[0].baseline_mb.gpu",
         "unknown memory source 'gpu' (valid: cpu-estimate, cuda)"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "baseline_mb": {"cpu_estimate": 1}},
         "budgets[0].baseline_mb.cpu_estimate", "did you mean 'cpu-estimate'?"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "baseline_mb": {"cuda": -1}},
         "budgets[0].baseline_mb.cuda", "must be >= 0 (got -1)"),
        ({"learner": {"name": "mrml"}, "limit_mb": {"cuda": 0}}, "budgets[0].limit_mb.cuda",
         "must be > 0 (got 0)"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "baseline_mb": {}},
         "budgets[0].baseline_mb", "must not be empty"),
        ({"learner": {"name": "mrml"}, "limit_mb": 1, "baseline_mb": "big"},
         "budgets[0].baseline_mb", "must be a number (got 'big')"),
    ],
)  # fmt: skip
def test_bad_budgets_name_the_field(budget, where, what):
    """Budget problems read like suite problems (one message function for both)."""
    with pytest.raises(InputError) as e:
        parse_budgets({"budgets": [{"learner": {"name": "anil"}, "limit_mb": 1}, budget]}, "f.y")
    msg = str(e.value).replace("budgets[1]", "budgets[0]")
    assert f"f.y: {where}:" in msg and what in msg, msg


def test_bad_top_level_and_file_errors(tmp_path):
    with pytest.raises(InputError, match="sourc"):
        parse_budgets({"sourc": "cuda", "budgets": [{"learner": {"name": "mrml"}}]})
    with pytest.raises(InputError, match="budgets"):
        parse_budgets({"budgets": []})
    with pytest.raises(InputError, match="source"):
        parse_budgets({"source": "gpu", "budgets": [{"learner": {"name": "mrml"}}]})
    with pytest.raises(InputError, match=r"defaults\.meta_batch"):
        parse_budgets({"defaults": {"meta_batch": 0}, "budgets": [{"learner": {"name": "x"}}]})
    with pytest.raises(InputError, match="cannot read"):
        load_budgets(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="YAML syntax error"):
        load_budgets(write(tmp_path, "budgets: [\n"))


def test_parse_budgets_with_suite_defaults():
    bf = parse_budgets(
        {"budgets": [{"learner": {"name": "mrml"}, "limit_mb": 5}]},
        "suite.yaml",
        defaults={"dataset": {"name": "glyphs", "image_size": 32}, "meta_batch": 3},
    )
    cell = bf.budgets[0].cell
    assert cell.dataset.params["image_size"] == 32 and cell.train.meta_batch == 3


# ----------------------------------------------------------------------------- verdicts


def test_verdicts_exit_codes_and_junit(tmp_path):
    path = write(
        tmp_path,
        {
            "defaults": TINY,
            "budgets": [
                {"learner": {"name": "mrml"}, "limit_mb": 10},
                {"learner": {"name": "maml"}, "baseline_mb": 20, "tolerance": "+5%"},
                {"learner": {"name": "anil"}, "limit_mb": 10, "source": "cuda"},
                {"learner": {"name": "mrml"}, "limit_mb": 9.5},  # same cell: measured once
            ],
        },
    )
    fake = FakeMeasure({"mrml": 9.9, "maml": 21.5})
    junit = tmp_path / "out" / "j.xml"
    assert run_check(path, junit=junit, device="cpu", console=quiet(), measure=fake) == 1
    assert fake.calls == [("mrml", "cpu", 1, "cpu-estimate"), ("maml", "cpu", 1, "cpu-estimate")]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    assert suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [False, True, False, True]
    assert cases[2].find("skipped") is not None
    assert "21.500 MB > allowed 21.000 MB" in cases[1].find("failure").get("message")

    fake = FakeMeasure({"mrml": 9.0, "maml": 20.9})
    assert run_check(path, device="cpu", console=quiet(), measure=fake) == 0


def test_crashing_cell_fails_but_input_errors_propagate(tmp_path):
    path = write(tmp_path, {"defaults": TINY, "budgets": [{"learner": {"name": "mrml"},
                                                           "limit_mb": 10}]})  # fmt: skip
    crash = FakeMeasure({"mrml": RuntimeError("boom")})
    assert run_check(path, device="cpu", console=quiet(), measure=crash) == 1
    bad = FakeMeasure({"mrml": InputError("dataset missing")})
    with pytest.raises(InputError, match="dataset missing"):
        run_check(path, device="cpu", console=quiet(), measure=bad)
    with pytest.raises(InputError, match="--device"):
        run_check(path, device="tpu", console=quiet(), measure=crash)


# ----------------------------------------------------------------------------- --update


def test_rewrite_baselines_keeps_comments_and_layout():
    text = (
        "# top comment\n"
        "budgets:\n"
        "  - {learner: {name: mrml}, baseline_mb: 1.0}  # keep me\n"
        "  - {learner: {name: maml} }\n"
        "  - learner:\n"
        "      name: anil\n"
        "    # trailing comment\n"
        "  - learner: {name: maml}\n"
        "    tolerance: '+5%'   # note\n"
    )
    out = rewrite_baselines(text, {0: 2.0, 1: 3.25, 2: 4.0, 3: 5.0})
    assert out == (
        "# top comment\n"
        "budgets:\n"
        "  - {learner: {name: mrml}, baseline_mb: 2.000}  # keep me\n"
        "  - {learner: {name: maml}, baseline_mb: 3.250 }\n"
        "  - learner:\n"
        "      name: anil\n"
        "    baseline_mb: 4.000\n"
        "    # trailing comment\n"
        "  - learner: {name: maml}\n"
        "    tolerance: '+5%'   # note\n"
        "    baseline_mb: 5.000\n"
    )
    assert [b["baseline_mb"] for b in yaml.safe_load(out)["budgets"]] == [2.0, 3.25, 4.0, 5.0]


def test_update_records_baselines_then_check_passes(tmp_path):
    text = (
        "# my budgets\n"
        f"defaults: {yaml.safe_dump(TINY, default_flow_style=True).strip()}\n"
        "budgets:\n"
        "  - {learner: {name: mrml}, tolerance: '+5%'}  # flat\n"
        "  - {learner: {name: maml}, limit_mb: 50, tolerance: '+5%', baseline_mb: 1}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(InputError, match="--update"):
        run_check(path, device="cpu", console=quiet(), measure=FakeMeasure({}))
    fake = FakeMeasure({"mrml": 7.1234, "maml": 30.0})
    assert run_check(path, update=True, device="cpu", console=quiet(), measure=fake) == 0
    new = path.read_text()
    assert new.startswith("# my budgets\n") and "# flat" in new
    assert [b["baseline_mb"] for b in yaml.safe_load(new)["budgets"]] == [7.123, 30.0]
    assert run_check(path, device="cpu", console=quiet(), measure=fake) == 0
    assert not list(tmp_path.glob(".b.yaml.*"))  # no temporary files left behind


# ----------------------------------------------------------------------------- real regressions


class LeakyMrml(Mrml):
    """mrml that keeps a copy of every ReLU activation of the meta-iteration (a planted bug)."""

    def meta_backward(self, tasks):
        self.stash: list[torch.Tensor] = []
        relus = [m for m in self.backbone.modules() if isinstance(m, nn.ReLU)]
        hooks = [
            m.register_forward_hook(lambda mod, inp, out: self.stash.append(out.detach().clone()))
            for m in relus
        ]
        try:
            return super().meta_backward(tasks)
        finally:
            for h in hooks:
                h.remove()


def replace_learner(monkeypatch, name: str, cls: type) -> None:
    old = LEARNERS.get(name)
    monkeypatch.setitem(LEARNERS._entries, name, Entry(name, old.summary, old.params, cls))


def test_planted_activation_copy_is_caught(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        {
            "defaults": {**TINY, "tolerance": "+5%"},
            "budgets": [{"learner": {"name": "mrml", "inner_steps": 3, "cg_steps": 3}}],
        },
    )
    assert run_check(path, update=True, device="cpu", console=quiet()) == 0
    assert run_check(path, device="cpu", console=quiet()) == 0  # deterministic: same peak
    replace_learner(monkeypatch, "mrml", LeakyMrml)
    junit = tmp_path / "j.xml"
    assert run_check(path, device="cpu", console=quiet(), junit=junit) == 1
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"


@pytest.mark.slow
def test_ci_budgets_pass_and_catch_mrml_backprop_through_inner_loop(monkeypatch):
    ci = ROOT / "budgets" / "ci.yaml"
    assert run_check(ci, device="cpu", console=quiet()) == 0
    # mrml differentiating through its K inner steps (MAML-style) instead of the implicit
    # hypergradient: memory grows with K and the shared K=5 / K=20 limit must fail
    replace_learner(monkeypatch, "mrml", Maml)
    assert run_check(ci, device="cpu", console=quiet()) == 1


def test_budgets_section_of_a_suite(tmp_path):
    text = (ROOT / "suites" / "smoke.yaml").read_text() + (
        "budgets:\n"
        "  - {learner: {name: mrml, inner_steps: 3}, tolerance: '+5%'}\n"
        "  - {learner: {name: maml}, limit_mb: 5, backbone: {hidden: 4}}\n"
    )
    path = write(tmp_path, text, "suite.yaml")
    fake = FakeMeasure({"mrml": 3.0, "maml": 6.0})
    assert run_check(path, update=True, device="cpu", console=quiet(), measure=fake) == 0
    bf = load_budgets(path)
    a, b = bf.budgets
    assert a.baselines == {"cpu-estimate": 3.0} and a.cell.train.meta_batch == 2  # suite defaults
    assert a.cell.backbone.params["hidden"] == 8 and b.cell.backbone.params["hidden"] == 4
    assert run_check(path, device="cpu", console=quiet(), measure=fake) == 1  # maml over 5 MB
    from memcomp.config import load_suite

    assert load_suite(path).budgets[0]["baseline_mb"] == 3.0  # still a valid suite
