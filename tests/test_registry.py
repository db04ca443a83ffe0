"""registry.py and what the config layer builds from it: a component registered later is
validated, listed in the schema and suggested for typos, with no other code."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import Field

from memcomp.config import ConfigError, suite_from_dict, suite_json_schema
from memcomp.errors import UnknownNameError
from memcomp.learners import LEARNERS, LearnerParams
from memcomp.registry import Entry, Registry, unknown_name_message


class PluginParams(LearnerParams):
    depth: int = Field(2, ge=1, le=8)


def test_lookup_suggests_and_lists() -> None:
    reg: Registry = Registry("thing")
    reg.register("alpha", "a", LearnerParams)(lambda: None)
    reg.register_lazy("beta", "b", LearnerParams, "os.path:join")
    assert reg.names() == ["alpha", "beta"] and "beta" in reg
    assert reg.get("beta").factory.__name__ == "join"
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(Entry("alpha", "again", LearnerParams, print))
    assert unknown_name_message("x", "q", ["a"]) == "unknown x 'q' (valid: a)"


def suite(learner: dict) -> dict:
    return {
        "name": "p",
        "datasets": [{"name": "glyphs"}],
        "settings": [{}],
        "backbones": [{"name": "conv4"}],
        "learners": [learner],
    }


def test_a_component_registered_later_is_validated_and_in_the_schema() -> None:
    LEARNERS.register("t-plugin", "a plugin", PluginParams)(lambda *a: None)
    try:
        cells = suite_from_dict(suite({"name": "t-plugin", "depth": [1, 3]})).cells
        assert [c.learner.params["depth"] for c in cells] == [1, 3]
        with pytest.raises(ConfigError, match=r"learners\[0\]\.depth: must be <= 8 \(got 9\)"):
            suite_from_dict(suite({"name": "t-plugin", "depth": 9}))
        with pytest.raises(ConfigError, match="did you mean 't-plugin'"):
            suite_from_dict(suite({"name": "t-plugn"}))
        assert "learner_t-plugin" in suite_json_schema()["$defs"]
    finally:
        LEARNERS._entries.pop("t-plugin")
    with pytest.raises(ConfigError, match="unknown learner 't-plugin'"):
        suite_from_dict(suite({"name": "t-plugin"}))
    assert "learner_t-plugin" not in suite_json_schema()["$defs"]


def _torch_after(code: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip() == "True"


def test_importing_the_config_layer_imports_no_torch() -> None:
    assert not _torch_after("import memcomp.config, memcomp.budgets")


def test_validating_a_suite_imports_no_torch() -> None:
    code = (
        "from memcomp.config import suite_from_dict; suite_from_dict({'name': 'p', "
        "'datasets': [{'name': 'glyphs'}], 'settings': [{}], 'backbones': [{'name': 'conv4'}], "
        "'learners': [{'name': 'maml'}]})"
    )
    assert not _torch_after(code)
