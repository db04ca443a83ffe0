"""config/source.py and problems.py: line maps, YAML faults and the shared message wording."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from memcomp.config import ConfigError, Problem, Strict, format_loc, parse_yaml, read_yaml, validate
from memcomp.config.problems import message


def test_line_map_follows_paths_and_merge_keys() -> None:
    text = "a: 1\nb:\n  - x: 2\n  - &y {z: 3}\nc: {<<: *y, w: 4}\n"
    src = parse_yaml(text, "f.yaml")
    assert src.data == {"a": 1, "b": [{"x": 2}, {"z": 3}], "c": {"z": 3, "w": 4}}
    assert src.problem(("b", 0, "x"), "m").line == 3
    assert src.problem(("b", 1, "z"), "m").line == 4
    assert src.problem(("c", "z"), "m").line == 4  # merged in: where the anchor wrote it
    assert src.problem(("c", "nope", 3), "m").line == 5  # nearest enclosing node
    assert str(src.problem(("b", 0, "x"), "bad")) == "f.yaml:3: b[0].x: bad"


@pytest.mark.parametrize(
    ("text", "needle", "line"),
    [
        ("a: [1\n", "YAML syntax error", 2),
        ("a: 1\na: 2\n", "duplicate key 'a'", 2),
        ("# empty\n", "thing file is empty", 1),
        ("a: !!python/object:os.system x\n", "YAML syntax error", 1),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply", None),
    ],
)
def test_yaml_faults_are_one_problem(text: str, needle: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml", "thing")
    [p] = info.value.problems
    assert needle in p.message and p.line == line and info.value.exit_code == 2


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    for path, needle in [
        (tmp_path / "none.yaml", "cannot read file"),
        (tmp_path / "bin.yaml", "UTF-8"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            read_yaml(path)


class Model(Strict):
    steps: int = Field(1, ge=0, le=10)
    name: str = Field("a", pattern=r"^[A-Za-z0-9_-]+$")


@pytest.mark.parametrize(
    ("data", "loc", "text"),
    [
        ({"steps": -1}, ("x", "steps"), "must be >= 0 (got -1)"),
        ({"steps": 11}, ("x", "steps"), "must be <= 10 (got 11)"),
        ({"steps": 1.5}, ("x", "steps"), "must be an integer (got 1.5)"),
        (
            {"step": 1},
            ("x", "step"),
            "unknown key 'step'; did you mean 'steps'? (valid: name, steps)",
        ),
        (
            {"name": "a/b"},
            ("x", "name"),
            "must contain only letters, digits, '-' and '_' (got 'a/b')",
        ),
        ([], ("x",), "must be a mapping (got a list)"),
    ],
)
def test_messages_are_written_once(data, loc, text) -> None:
    out: list = []
    assert validate(Model, data, ("x",), out) is None
    assert out == [(loc, text)]


def test_format_loc_and_one_line() -> None:
    assert format_loc(("learners", 1, "inner_lr")) == "learners[1].inner_lr"
    assert format_loc(("a", "b c", 0)) == "a['b c'][0]"
    assert str(Problem("f", None, "", "two\nlines")) == "f: two\\nlines"
    assert message({"type": "missing", "loc": ("a",)}) == "required"
