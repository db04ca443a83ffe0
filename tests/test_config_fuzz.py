"""Property test: random and mutated suites only ever produce valid cells or a SuiteError."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_suite import fake_components, valid_suite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcomp.config import SuiteError, expand, load_suite

FILE_LEVEL = ("cannot read file", "YAML", "suite")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["maml", "t-maml", "conv4", "t-data", "native", "adam", "../x", "", "5"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["name", "lr", "ways"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node inside a nested dict/list."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated_suites(draw: st.DrawFn) -> Any:
    data: Any = valid_suite()
    for _ in range(draw(st.integers(0, 4))):
        if not isinstance(data, dict):
            break
        target = draw(st.sampled_from(paths(data)))
        parent: Any = data
        for part in target[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["delete", "insert", "replace", "listify"]))
        if not target:
            data = draw(values) if op == "replace" else data
            continue
        key = target[-1]
        if op == "delete":
            del parent[key]
        elif op == "insert" and isinstance(parent[key], dict):
            parent[key][draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif op == "listify":
            parent[key] = draw(st.lists(st.just(parent[key]) | scalars, max_size=3))
        else:
            parent[key] = draw(values)
    return data


def check(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            suite = load_suite(path)
        except SuiteError as err:
            assert err.problems
            for p, line in zip(err.problems, str(err).splitlines(), strict=True):
                assert line.startswith(f"{path}"), line
                assert p.field or p.message.startswith(FILE_LEVEL), p
                assert p.line is None or p.line >= 1
            return
        cells = expand(suite)
        assert len(cells) >= 1
        assert len({c.id for c in cells}) == len(cells)


@pytest.fixture(scope="module", autouse=True)
def _fakes():
    with fake_components():
        yield


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated_suites())
def test_mutated_suites(data: Any) -> None:
    check(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=100))
def test_random_text(text: str | bytes) -> None:
    check(text)


@FUZZ
@given(mutated_suites(), st.integers(0, 10_000), st.integers(1, 20))
def test_truncated_yaml(data: Any, at: int, length: int) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    at %= max(len(text), 1)
    check(text[:at] + text[at + length :])


# ----------------------------------------------------------------------------- budget files

BUDGETS: dict[str, Any] = {
    "source": "cpu-estimate",
    "defaults": {"dataset": {"name": "glyphs", "image_size": 28}, "meta_batch": 1},
    "budgets": [
        {"learner": {"name": "mrml", "inner_steps": 3}, "limit_mb": 12},
        {"learner": {"name": "maml"}, "baseline_mb": 30.1, "tolerance": "+5%"},
    ],
}


@st.composite
def mutated_budgets(draw: st.DrawFn) -> Any:
    import copy

    data: Any = copy.deepcopy(BUDGETS)
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(paths(data)))
        if not target:
            data = draw(values)
            break
        parent: Any = data
        for part in target[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            del parent[target[-1]]
        else:
            parent[target[-1]] = draw(values)
    return data


def check_budget_file(text: str | bytes) -> None:
    from memcomp.budgets import load_budgets
    from memcomp.config import ConfigError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        try:
            bf = load_budgets(path)
        except ConfigError as err:
            assert err.problems and err.exit_code == 2
            for p in err.problems:
                assert p.file == str(path) and (p.line is None or p.line >= 1)
                assert p.field or p.message.startswith(
                    ("cannot read file", "YAML", "budget", "must")
                )
            return
        assert bf.budgets and all(b.cell.id for b in bf.budgets)


@FUZZ
@given(mutated_budgets())
def test_mutated_budget_files(data: Any) -> None:
    check_budget_file(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=100))
def test_random_budget_text(text: str | bytes) -> None:
    check_budget_file(text)
