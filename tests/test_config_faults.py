"""Issue 13's faults in the config layer, each reproduced: runaway suites, malformed budget files,
a ``null:`` key, absurd sizes. Every one must be exit 2 with file, line and field, fast."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from helpers_suite import MAML, fake_components, valid_suite
from typer.testing import CliRunner

from memcomp.budgets import load_budgets
from memcomp.cli import app
from memcomp.config import MAX_CELLS, ConfigError, load_suite

runner = CliRunner()


def output(res) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(res.output.split()).replace(": \n", ": ")


def write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(path: Path, load=load_suite) -> list:
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.exit_code == 2
    return info.value.problems


# ----------------------------------------------------------------------------- (4) runaway suite


def test_million_cell_suite_fails_fast(tmp_path: Path) -> None:
    """100 seeds x 100 inner_steps x 100 inner_lr: each learner under its own cap (10,000 cells),
    1,000,000 cells in all. Counted before any cell is built: refused in well under a second."""
    data = valid_suite()
    data["seeds"] = list(range(100))
    data["learners"] = [
        {
            "name": MAML,
            "inner_steps": list(range(100)),
            "inner_lr": [0.01 * (i + 1) for i in range(100)],
        }
    ]
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    with fake_components():
        t0 = time.perf_counter()
        [p] = problems(path)
        assert time.perf_counter() - t0 < 5
    assert p.field == "learners" and p.line == data_line(path, "learners:")
    assert f"expands to 1,000,000 cells (at most {MAX_CELLS:,})" in p.message
    assert "split it" in p.message


def data_line(path: Path, prefix: str) -> int:
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix)
    )


def test_runaway_suite_exit_2_from_validate(tmp_path: Path) -> None:
    text = (
        "name: runaway\n"
        "seeds: [" + ", ".join(map(str, range(200))) + "]\n"
        "datasets: [{name: glyphs}]\n"
        "settings: [{ways: 5}]\n"
        "backbones: [{name: conv4}]\n"
        "learners:\n"
        "  - {name: maml, inner_steps: [" + ", ".join(map(str, range(1, 101))) + "],\n"
        "     inner_lr: [" + ", ".join(f"0.{i:03d}" for i in range(1, 101)) + "]}\n"
    )
    t0 = time.perf_counter()
    res = runner.invoke(app, ["validate", str(write(tmp_path, text))])
    assert time.perf_counter() - t0 < 10
    assert res.exit_code == 2, res.output
    assert re.search(r"s\.yaml:6: learners: the suite expands to 2,000,000 cells", output(res))


# ----------------------------------------------------------------------------- (6) bad budgets


def test_budgets_not_utf8_is_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, b"budgets:\n  - {learner: {name: \xff\xfe}}\n", "b.yaml")
    [p] = problems(path, load_budgets)
    assert p.file == str(path) and "not UTF-8" in p.message
    res = runner.invoke(app, ["check", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output and "UTF-8" in output(res)


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deeply_nested_budgets_is_exit_2(tmp_path: Path, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    depth = 5000
    body = (
        opener * depth + "1" + closer * depth
        if closer
        else "".join("  " * i + "- " + ("\n" if i < depth - 1 else "1\n") for i in range(depth))
    )
    path = write(tmp_path, "budgets: " + body + "\n", "b.yaml")
    [p] = problems(path, load_budgets)
    assert p.file == str(path)
    res = runner.invoke(app, ["check", str(path)])
    assert res.exit_code == 2, res.output
    assert "RecursionError" not in res.output and "Traceback" not in res.output


def test_budget_errors_carry_line_and_field(tmp_path: Path) -> None:
    text = (
        "source: cpu-estimate\n"  # 1
        "defaults:\n"  # 2
        "  meta_batch: 0\n"  # 3
        "budgets:\n"  # 4
        "  - {learner: {name: mrml}, limit_mb: 3}\n"  # 5
        "  - learner: {name: mrml, inner_stesp: 3}\n"  # 6
        "    limit_mb: -1\n"  # 7
        "  - {learner: {name: mamll}, limit_mb: 3}\n"  # 8
    )
    path = write(tmp_path, text, "b.yaml")
    got = [str(p) for p in problems(path, load_budgets)]
    assert got == [
        f"{path}:3: defaults.meta_batch: must be >= 1 (got 0)",
        f"{path}:7: budgets[1].limit_mb: must be > 0 (got -1)",
    ]  # the file's structure first; the components once it holds
    fixed = text.replace("meta_batch: 0", "meta_batch: 1").replace("limit_mb: -1", "limit_mb: 1")
    got = [str(p) for p in problems(write(tmp_path, fixed, "b.yaml"), load_budgets)]
    assert got[0].startswith(f"{path}:6: budgets[1].learner.inner_stesp: unknown key 'inner_stesp'")
    assert "did you mean 'inner_steps'?" in got[0]
    assert got[1].startswith(f"{path}:8: budgets[2].learner.name: unknown learner 'mamll'")
    res = runner.invoke(app, ["check", str(path)])
    assert res.exit_code == 2 and f"{path}:6: budgets[1].learner.inner_stesp" in output(res)


def test_budget_duplicate_key_and_empty_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "budgets:\n  - {learner: {name: mrml}, limit_mb: 3, limit_mb: 4}\n", "b.yaml"
    )
    [p] = problems(path, load_budgets)
    assert (p.line, p.field) == (2, "budgets[0].limit_mb") and "duplicate key" in p.message
    [p] = problems(write(tmp_path, "# nothing\n", "b.yaml"), load_budgets)
    assert p.message == "budget file is empty"


# ----------------------------------------------------------------------------- (7) null key


def test_null_key_reported_at_its_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_suite(), sort_keys=False)
    lines = text.splitlines()
    at = lines.index("learners:")
    text = "\n".join([*lines[:at], "null: 3", *lines[at:]]) + "\n"
    with fake_components():
        [p] = problems(write(tmp_path, text))
    assert p.line == at + 1 and p.field == "null"
    assert p.message == "keys must be strings (got null): quote it to use it as text"
    # inside an entry too
    text2 = yaml.safe_dump(valid_suite(), sort_keys=False).replace(
        "  inner_lr: 0.4\n", "  inner_lr: 0.4\n  ~: 1\n"
    )
    with fake_components():
        [p] = problems(write(tmp_path, text2))
    assert p.field == "learners[0].null" and p.line == text2.splitlines().index("  ~: 1") + 1
    # numbers and booleans as keys: named as written, at their own line
    text3 = text2.replace("  ~: 1\n", "  3: 1\n  true: 2\n")
    with fake_components():
        found = problems(write(tmp_path, text3))
    assert [(p.field, p.line) for p in found] == [
        ("learners[0].3", text3.splitlines().index("  3: 1") + 1),
        ("learners[0].true", text3.splitlines().index("  true: 2") + 1),
    ]


# ----------------------------------------------------------------------------- (9) absurd sizes


@pytest.mark.parametrize(
    ("where", "key", "value", "bound"),
    [
        ("train", "meta_batch", 1_000_000_000, "<= 100000"),
        ("train", "iterations", 10**12, "<= 10000000"),
        ("test", "finetune_steps", 10**11, "<= 100000"),
        ("test", "episodes", 10**9, "<= 100000"),
        ("learner", "inner_steps", 10**10, "<= 100000"),
        ("learner", "cg_steps", 10**11, "<= 100000"),
    ],
)
def test_absurd_sizes_name_the_bound(tmp_path, where, key, value, bound) -> None:
    data = valid_suite()
    data["datasets"] = [{"name": "glyphs"}]
    data["learners"] = [{"name": "mrml", "inner_steps": 5}]
    target = data["learners"][0] if where == "learner" else data[where]
    target[key] = value
    field = f"learners[0].{key}" if where == "learner" else f"{where}.{key}"
    [p] = problems(write(tmp_path, yaml.safe_dump(data, sort_keys=False)))
    assert p.field == field and p.message == f"must be {bound} (got {value})"


@pytest.mark.parametrize("text", ["cg_steps: 1e11", "inner_steps: 1e10"])
def test_sizes_in_exponent_form_are_rejected(tmp_path, text) -> None:
    data = valid_suite()
    data["datasets"] = [{"name": "glyphs"}]
    data["learners"] = [{"name": "mrml"}]
    suite = yaml.safe_dump(data, sort_keys=False).replace(
        "- name: mrml\n", f"- name: mrml\n  {text}\n"
    )
    [p] = problems(write(tmp_path, suite))
    assert p.field == "learners[0]." + text.split(":")[0] and "must be an integer" in p.message


def test_schema_states_the_bounds() -> None:
    from memcomp.config import suite_json_schema

    defs = suite_json_schema()["$defs"]
    assert defs["TrainConfig"]["properties"]["meta_batch"]["maximum"] == 100_000
    assert defs["TestConfig"]["properties"]["finetune_steps"]["maximum"] == 100_000
    mrml = defs["learner_mrml"]["properties"]["cg_steps"]["oneOf"]
    assert mrml[0]["maximum"] == 100_000 and mrml[1]["items"]["maximum"] == 100_000
