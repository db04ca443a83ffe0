"""Suite loading, validation messages, expansion into cells, filtering and JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_suite import DATA, MAML, MRML, fake_components, valid_suite

from memcomp.config import (
    Problem,
    SuiteError,
    describe_cells,
    expand,
    filter_cells,
    load_suite,
    suite_from_dict,
    suite_json_schema,
)
from memcomp.errors import InputError


@pytest.fixture(autouse=True)
def _fakes():
    with fake_components():
        yield


def write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    err = info.value
    assert isinstance(err, InputError)
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems)
    assert all(line.startswith(f"{path}:") for line in lines)
    return err.problems


def one(problems: list[Problem], field: str) -> Problem:
    found = [p for p in problems if p.field == field]
    assert len(found) == 1, problems
    return found[0]


# ----------------------------------------------------------------------------- valid suites


def test_valid_suite_expands_cross_product(tmp_path: Path) -> None:
    data = valid_suite()
    data["seeds"] = [0, 1]
    data["settings"].append({"ways": 5, "shots": 5})
    suite = load_suite(write(tmp_path, data))
    cells = expand(suite)
    # 1 dataset x 2 settings x 1 backbone x (1 + 2) learner cells x 2 seeds
    assert len(cells) == 12
    assert len({c.id for c in cells}) == 12
    assert suite.name == "quick_start-1" and suite.device == "auto"
    assert suite.source_text.startswith("name:")
    assert [c.seed for c in cells[:4]] == [0, 1, 0, 1]
    steps = [c.learner.params["inner_steps"] for c in cells if c.learner.name == MRML]
    assert sorted(set(steps)) == [5, 20]


def test_component_params_are_full(tmp_path: Path) -> None:
    cells = expand(load_suite(write(tmp_path, valid_suite())))
    maml = cells[0]
    assert maml.learner.params == {"inner_steps": 5, "inner_lr": 0.4, "first_order": False}
    assert maml.dataset.params == {"image_size": 28, "root": "nowhere"}
    assert maml.backbone.params == {"hidden": 32, "blocks": 4}
    assert maml.setting.queries == 15


def test_ids_stable_across_key_order_and_spelling(tmp_path: Path) -> None:
    a = valid_suite()
    b: dict[str, Any] = {k: a[k] for k in reversed(list(a))}
    b["learners"] = [dict(reversed(list(e.items()))) for e in a["learners"]]
    b["backbones"] = [{"name": "conv4"}]  # hidden 32 is the default
    b["test"] = {"protocol": "native"}  # episodes 600 is the default
    ids_a = [c.id for c in expand(load_suite(write(tmp_path, a, "a.yaml")))]
    ids_b = [c.id for c in expand(load_suite(write(tmp_path, b, "b.yaml")))]
    assert sorted(ids_a) == sorted(ids_b)
    assert ids_a == [c.id for c in expand(load_suite(write(tmp_path, a, "c.yaml")))]


def test_yaml_floats_in_exponent_form(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_suite(), sort_keys=False).replace("lr: 0.001", "lr: 1e-3")
    assert "1e-3" in text
    cells = expand(load_suite(write(tmp_path, text)))
    assert cells[0].train.lr == 0.001


def test_learner_overrides_merge(tmp_path: Path) -> None:
    cells = expand(load_suite(write(tmp_path, valid_suite())))
    by = {c.learner.name: c for c in cells}
    assert by[MAML].train.lr == 0.001 and by[MRML].train.lr == 0.002
    # keys not overridden come from the suite level, not from the defaults
    assert by[MRML].train.iterations == 200 and by[MRML].train.eval_every == 25
    assert by[MRML].test == by[MAML].test


def test_list_expansion_product_is_sorted_and_complete(tmp_path: Path) -> None:
    data = valid_suite()
    data["learners"] = [{"name": MRML, "l2": [0.1, 0.01], "inner_steps": [1, 2, 3]}]
    cells = expand(load_suite(write(tmp_path, data)))
    got = [(c.learner.params["inner_steps"], c.learner.params["l2"]) for c in cells]
    assert got == [(s, l2) for s in (1, 2, 3) for l2 in (0.1, 0.01)]


def test_budgets_are_typed_and_kept(tmp_path: Path) -> None:
    data = valid_suite()
    data["budgets"] = [{"learner": {"name": MRML}, "limit_mb": 12}]
    assert load_suite(write(tmp_path, data)).budgets == data["budgets"]  # as written, checked


def test_filter_cells(tmp_path: Path) -> None:
    cells = expand(load_suite(write(tmp_path, valid_suite())))
    assert filter_cells(cells, MAML) == cells[:1]
    assert filter_cells(cells, "T-MRML") == cells[1:]
    assert filter_cells(cells, f"{cells[2].id[:6]}*") == [cells[2]]
    assert filter_cells(cells, "*inner_steps=20*") == [cells[2]]
    assert filter_cells(cells, f"{MAML}, {cells[2].id}") == [cells[0], cells[2]]
    assert filter_cells(cells, "nothing") == []
    assert filter_cells(cells, " ") == cells


def test_describe_cells_rows(tmp_path: Path) -> None:
    cells = expand(load_suite(write(tmp_path, valid_suite())))
    rows = describe_cells(cells)
    assert [r["id"] for r in rows] == [c.id for c in cells]
    assert rows[0]["setting"] == "5w1s15q" and rows[0]["learner"] == MAML
    assert rows[2]["params"].startswith("cg_steps=20,")
    json.dumps(rows)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("edit", "field", "line", "pattern"),
    [
        (lambda d: d.update(colour="red"), "colour", 21, r"unknown key 'colour'"),
        (lambda d: d.update(learner=[]), "learner", 21, r"did you mean 'learners'"),
        (
            lambda d: d["learners"][0].update(name="t-mamll"),
            "learners[0].name",
            14,
            r"unknown learner 't-mamll'; did you mean 't-maml'\? \(valid: .*t-mrml",
        ),
        (
            lambda d: d["datasets"][0].update(name="t-dat"),
            "datasets[0].name",
            5,
            r"unknown dataset .*did you mean 't-data'",
        ),
        (
            lambda d: d["settings"][0].update(ways="five"),
            "settings[0].ways",
            7,
            r"must be an integer \(got 'five'\)",
        ),
        (
            lambda d: d["settings"][0].update(ways=1),
            "settings[0].ways",
            7,
            r"must be >= 2 \(got 1\)",
        ),
        (lambda d: d["settings"][0].update(shots=0), "settings[0].shots", 7, r"must be >= 1"),
        (
            lambda d: d["learners"][1].update(inner_lr=-0.1),
            "learners[1].inner_lr",
            17,
            r"^must be > 0 \(got -0.1\)$",
        ),
        (
            lambda d: d["learners"][1].update(inner_lr=float("nan")),
            "learners[1].inner_lr",
            17,
            r"must be a finite number \(got nan\)",
        ),
        (
            lambda d: d["learners"][1].update(inner_steps=[5, -1]),
            "learners[1].inner_steps[1]",
            16,
            r"must be >= 0 \(got -1\)",
        ),
        (lambda d: d["learners"][1].update(l2=[]), "learners[1].l2", 19, r"must not be empty"),
        (lambda d: d["learners"][1]["train"].update(lr=0), "learners[1].train.lr", 20, r"> 0"),
        (lambda d: d["learners"][1].update(test=3), "learners[1].test", 21, "must be a mapping"),
        (lambda d: d["train"].update(lr=float("inf")), "train.lr", 11, "finite"),
        (lambda d: d["train"].update(optimizer="lbfgs"), "train.optimizer", 11, "'adam' or 'sgd'"),
        (lambda d: d["test"].update(protocol="x"), "test.protocol", 12, "'native' or"),
        (lambda d: d.update(datasets=[]), "datasets", 4, "must not be empty"),
        (lambda d: d.update(seeds=[]), "seeds", 10, "must not be empty"),
        (lambda d: d.update(seeds=[-1]), "seeds[0]", 10, ">= 0"),
        (lambda d: d.update(name="../escape"), "name", 1, "only letters, digits"),
        (lambda d: d.update(name="a/b"), "name", 1, "only letters"),
        (lambda d: d.update(device="gpu"), "device", 3, "'auto', 'cpu' or 'cuda'"),
        (lambda d: d.pop("learners"), "learners", 1, "^required$"),
        (lambda d: d["learners"][0].pop("name"), "learners[0].name", 14, "required"),
        (lambda d: d["learners"].append("maml"), "learners[2]", 21, "must be a mapping"),
        (lambda d: d["backbones"][0].update(hiden=3), "backbones[0].hiden", 9, "'hidden'"),
        (lambda d: d.update(budgets={"a": 1}), "budgets", 21, "must be a list"),
    ],
)
def test_bad_input_reports_file_line_field(tmp_path, edit, field, line, pattern) -> None:
    data = valid_suite()
    data["device"] = "auto"
    data = {k: data[k] for k in ("name", "description", "device", "datasets", "settings")} | {
        k: data[k] for k in ("backbones", "seeds", "train", "test", "learners")
    }
    edit(data)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=200)
    path = write(tmp_path, text)
    p = one(problems_of(path), field)
    assert re.search(pattern, p.message), p.message
    assert p.line == line, (text, p)
    assert f"{path}:{line}: {field}: " in str(p)


def test_example_line_format(tmp_path: Path) -> None:
    text = (
        "name: x\n"
        "datasets: [{name: t-data}]\n"
        "settings: [{}]\n"
        "backbones: [{name: conv4}]\n"
        "learners:\n"
        "  - name: t-maml\n"
        "  - name: t-mrml\n"
        "    inner_steps: 3\n"
        "    inner_lr: -0.1\n"
    )
    problems = problems_of(write(tmp_path, text))
    assert [str(p) for p in problems] == [
        f"{tmp_path / 's.yaml'}:9: learners[1].inner_lr: must be > 0 (got -0.1)"
    ]


def test_multiple_problems_reported_together(tmp_path: Path) -> None:
    data = valid_suite()
    data["name"] = "../x"
    data["settings"][0]["ways"] = 1
    data["learners"][0]["name"] = "nope"
    data["learners"][1]["cg_steps"] = -3
    data["train"]["lr"] = float("nan")
    data["extra"] = 1
    problems = problems_of(write(tmp_path, data))
    fields = {p.field for p in problems}
    assert fields == {
        "name",
        "settings[0].ways",
        "learners[0].name",
        "learners[1].cg_steps",
        "train.lr",
        "extra",
    }
    lines = [p.line for p in problems]
    assert lines == sorted(lines)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    [p] = problems_of(missing)
    assert p.file == str(missing) and "cannot read file" in p.message
    (tmp_path / "dir.yaml").mkdir()
    [p] = problems_of(tmp_path / "dir.yaml")
    assert "cannot read file" in p.message
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    [p] = problems_of(bad)
    assert "UTF-8" in p.message


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nseeds: [0, 1\ndatasets: []\n")
    [p] = problems_of(path)
    assert p.message.startswith("YAML syntax error") and p.line in (2, 3)
    path = write(tmp_path, "name: x\n  bad: indent\n")
    [p] = problems_of(path)
    assert p.message.startswith("YAML syntax error") and p.line == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "empty"), ("# only a comment\n", "empty"), ("- 1\n- 2\n", "mapping"), ("a\n", "mapping")],
)
def test_not_a_mapping(tmp_path: Path, text: str, needle: str) -> None:
    [p] = problems_of(write(tmp_path, text))
    assert needle in p.message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_suite(), sort_keys=False) + "name: again\n"
    [p] = problems_of(write(tmp_path, text))
    assert p.field == "name" and "duplicate key" in p.message
    assert p.line == len(text.splitlines())


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(seeds=[0, 1, 0]), "seeds[2]"),
        (lambda d: d["learners"].append({"name": MAML, "inner_lr": 0.4}), "learners[2]"),
        (lambda d: d["learners"][1].update(inner_steps=[5, 20, 5]), "learners[1].inner_steps[2]"),
        (lambda d: d["learners"][1].update(inner_lr=[0.1, 1e-1]), "learners[1].inner_lr[1]"),
        (lambda d: d["settings"].append({"ways": 5}), "settings[1]"),
        (lambda d: d["backbones"].append({"name": "conv4", "blocks": 4}), "backbones[1]"),
    ],
)
def test_duplicate_cells(tmp_path: Path, edit, field) -> None:
    data = valid_suite()
    edit(data)
    problems = problems_of(write(tmp_path, data))
    assert [p.field for p in problems] == [field]
    assert "duplicate cell" in problems[0].message


# ----------------------------------------------------------------------------- JSON Schema


def deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``$ref`` into ``$defs`` followed (pydantic names shared models)."""
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def variants(schema: dict[str, Any], axis: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The members of an axis' discriminated union, by their ``name`` const."""
    members = [deref(schema, v) for v in axis["items"]["oneOf"]]
    return {v["properties"]["name"]["const"]: v for v in members}


def test_json_schema_structure() -> None:
    schema = suite_json_schema()
    json.dumps(schema)
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(props) == {
        "name",
        "description",
        "seeds",
        "device",
        "datasets",
        "settings",
        "backbones",
        "train",
        "test",
        "learners",
        "parts",
        "budgets",
        "plugins",  # modules imported before validation (README "Extending")
        "executor",
    }
    mrml = variants(schema, props["learners"])[MRML]
    assert mrml["additionalProperties"] is False
    l2 = mrml["properties"]["l2"]["oneOf"]  # a value, or a list of values (one cell each)
    assert l2[0]["type"] == "number" and l2[1]["type"] == "array"
    assert l2[1]["items"]["exclusiveMinimum"] == 0 and l2[1]["minItems"] == 1
    train = mrml["properties"]["train"]["anyOf"][0]  # the overrides of train keys
    assert deref(schema, train)["properties"]["lr"]["exclusiveMinimum"] == 0
    assert DATA in variants(schema, props["datasets"])
    assert "conv4" in variants(schema, props["backbones"])
    for ref in re.findall(r'"\$ref": "#/\$defs/(\w+)"', json.dumps(schema)):
        assert ref in schema["$defs"]
    assert schema["$defs"]["Setting"]["properties"]["ways"]["minimum"] == 2


def test_extension_keys_hold_anchors(tmp_path: Path) -> None:
    text = (
        "name: x\n"
        f"x-base: &b {{name: {MRML}, inner_lr: 0.2, cg_steps: 3}}\n"
        f"datasets: [{{name: {DATA}}}]\n"
        "settings: [{ways: 3}]\n"
        "backbones: [{name: conv4}]\n"
        "learners:\n"
        "  - <<: *b\n"
        "    inner_steps: [1, 2]\n"
        "  - {<<: *b, l2: 0.5}\n"
    )
    cells = expand(load_suite(write(tmp_path, text)))
    assert [c.learner.params["inner_steps"] for c in cells] == [1, 2, 5]
    assert {c.learner.params["cg_steps"] for c in cells} == {3}
    assert cells[2].learner.params["l2"] == 0.5


def test_suite_from_dict_and_problem_locations(tmp_path: Path) -> None:
    data = valid_suite()
    assert len(expand(suite_from_dict(data))) == 3
    data["settings"][0]["ways"] = 1
    with pytest.raises(SuiteError, match=r"^<suite>: settings\[0\]\.ways: must be >= 2"):
        suite_from_dict(data)
    suite = load_suite(write(tmp_path, valid_suite()))
    p = suite.problem(("learners", 1, "l2"), "too big")
    assert p.line == suite.source_text.splitlines().index("  l2: 0.01") + 1
    assert str(p).endswith(": learners[1].l2: too big")


def test_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    text = (
        "name: x\n"
        f"x-base: &b {{name: {MRML}, inner_lr: 0.2, cg_steps: 3}}\n"
        f"datasets: [{{name: {DATA}}}]\n"
        "settings: [{ways: 3}]\n"
        "backbones: [{name: conv4}]\n"
        "learners:\n"
        "  - {<<: *b, inner_lr: 0.3}\n"
        "  - <<: *b\n"
        "    cg_steps: -1\n"
    )
    problems = problems_of(write(tmp_path, text))
    assert [(p.field, p.line) for p in problems] == [("learners[1].cg_steps", 9)]
    cells = expand(load_suite(write(tmp_path, text.replace("-1", "4"))))
    assert [(c.learner.params["inner_lr"], c.learner.params["cg_steps"]) for c in cells] == [
        (0.3, 3),
        (0.2, 4),
    ]
    # a bad value merged in from an anchor is reported at the line it is written on
    [p] = problems_of(write(tmp_path, text.replace("-1", "4").replace("0.2", "-0.2")))
    assert (p.field, p.line) == ("learners[1].inner_lr", 2)


# ----------------------------------------------------------------------------- parts

PARTS = (
    "name: parts\n"  # 1
    "seeds: [0, 1]\n"  # 2
    "settings: [{ways: 5, shots: 1}]\n"  # 3
    "train: {iterations: 50, lr: 0.001, meta_batch: 2}\n"  # 4
    "test: {episodes: 10}\n"  # 5
    f"learners: [{{name: {MAML}, inner_steps: 2}}]\n"  # 6
    "parts:\n"  # 7
    "  - name: small\n"  # 8
    f"    datasets: [{{name: {DATA}, image_size: 16}}]\n"  # 9
    "    backbones: [{name: conv4, hidden: 8}]\n"  # 10
    "    train: {lr: 0.01}\n"  # 11
    "  - name: big\n"  # 12
    "    description: two learners, own seeds and test protocol\n"  # 13
    f"    datasets: [{{name: {DATA}, image_size: 32}}]\n"  # 14
    "    backbones: [{name: conv4, hidden: 16}]\n"  # 15
    "    seeds: [7]\n"  # 16
    "    test: {protocol: head-finetune}\n"  # 17
    "    learners:\n"  # 18
    f"      - {{name: {MAML}, inner_steps: 3}}\n"  # 19
    f"      - name: {MRML}\n"  # 20
    "        inner_lr: 0.2\n"  # 21
    "        inner_steps: [4, 6]\n"  # 22
    "        train: {meta_batch: 8}\n"  # 23
)


def test_parts_concatenate_cross_products(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, PARTS))
    cells = expand(suite)
    # part small: 1 dataset x 1 setting x 1 backbone x 1 learner x 2 seeds;
    # part big: 1 x 1 x 1 x (1 + 2) learner cells x 1 seed
    assert len(cells) == 2 + 3 and len({c.id for c in cells}) == 5
    small, big = cells[:2], cells[2:]
    assert [c.seed for c in small] == [0, 1] and {c.seed for c in big} == {7}
    assert {c.dataset.params["image_size"] for c in small} == {16}
    assert {c.backbone.params["hidden"] for c in big} == {16}
    assert [c.learner.params["inner_steps"] for c in big] == [3, 4, 6]
    # train/test merged key by key: part over top level, learner over part
    assert small[0].train.model_dump() == {**suite.train.model_dump(), "lr": 0.01}
    assert small[0].train.iterations == 50 and small[0].test.protocol == "native"
    assert [c.train.meta_batch for c in big] == [2, 8, 8]
    assert {c.train.lr for c in big} == {0.001}
    assert {(c.test.protocol, c.test.episodes) for c in big} == {("head-finetune", 10)}
    # the Suite lists every value used, and each part resolved
    assert [p.name for p in suite.parts] == ["small", "big"]
    assert suite.parts[1].description.startswith("two learners")
    assert [d.params["image_size"] for d in suite.datasets] == [16, 32]
    assert suite.seeds == [0, 1, 7]
    assert [e["name"] for e in suite.learners] == [MAML, MAML, MRML]
    assert suite.parts[0].loc("learners") == ("learners",)
    assert suite.parts[1].loc("learners") == ("parts", 1, "learners")
    # each cell knows where its values are written (preflight points there)
    assert big[1].where("learners") == ("parts", 1, "learners", 1)
    assert small[0].where("learners") == ("learners", 0)
    assert big[0].where("datasets") == ("parts", 1, "datasets", 0)
    assert big[0].where("settings") == ("settings", 0)
    assert big[0].where("seeds") == ("parts", 1, "seeds", 0)
    assert suite.problem(big[0].where("datasets"), "x").line == 14
    assert suite.problem(big[2].where("learners"), "x").line == 20


def test_part_names_do_not_change_cell_ids(tmp_path: Path) -> None:
    a = expand(load_suite(write(tmp_path, PARTS)))
    renamed = PARTS.replace("name: small", "name: other").replace("two learners", "2")
    assert [c.id for c in expand(load_suite(write(tmp_path, renamed)))] == [c.id for c in a]


def test_suite_without_parts_is_one_block(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, valid_suite()))
    assert suite.parts == ()
    [block] = suite.blocks()
    assert block.index is None and block.loc("datasets") == ("datasets",)
    assert len(expand(suite)) == 3


def test_parts_equal_to_flat_suite(tmp_path: Path) -> None:
    """A suite split into parts along the datasets gives the same cells as the flat suite."""
    flat = valid_suite()
    flat["datasets"].append({"name": DATA, "image_size": 32})
    split = valid_suite()
    del split["datasets"]
    split["parts"] = [{"datasets": [d]} for d in flat["datasets"]]
    a = expand(load_suite(write(tmp_path, flat, "a.yaml")))
    b = expand(load_suite(write(tmp_path, split, "b.yaml")))
    assert [c.id for c in a] == [c.id for c in b] and len(a) == 6


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "pattern"),
    [
        ("inner_lr: 0.2", "inner_lr: -0.2", "parts[1].learners[1].inner_lr", 21, "> 0"),
        ("[4, 6]", "[4, -6]", "parts[1].learners[1].inner_steps[1]", 22, ">= 0"),
        ("meta_batch: 8", "meta_batch: 0", "parts[1].learners[1].train.meta_batch", 23, ">= 1"),
        ("train: {lr: 0.01}", "train: {lr: -1}", "parts[0].train.lr", 11, "> 0"),
        ("train: {lr: 0.01}", "train: 3", "parts[0].train", 11, "must be a mapping"),
        ("protocol: head-finetune", "protocol: x", "parts[1].test.protocol", 17, "'native' or"),
        ("seeds: [7]", "seeds: [-7]", "parts[1].seeds[0]", 16, ">= 0"),
        ("seeds: [7]", "seeds: []", "parts[1].seeds", 16, "must not be empty"),
        ("hidden: 16", "hiden: 16", "parts[1].backbones[0].hiden", 15, "'hidden'"),
        ("image_size: 32}", "image_size: 32, x: 1}", "parts[1].datasets[0].x", 14, "unknown"),
        (f"name: {MRML}", "name: t-mrmll", "parts[1].learners[1].name", 20, "did you mean"),
        ("  - name: big\n", "  - name: big\n    colour: red\n", "parts[1].colour", 13, "unknown"),
        ("  - name: small\n", "  - 5\n  - name: small\n", "parts[0]", 8, "must be a mapping"),
        ("name: small", f"name: {'s' * 101}", "parts[0].name", 8, "at most 100"),
        ("parts:\n", "parts: []\nx-parts:\n", "parts", 7, "must not be empty"),
    ],
)
def test_problems_in_parts_are_located(tmp_path, old, new, field, line, pattern) -> None:
    assert old in PARTS
    p = one(problems_of(write(tmp_path, PARTS.replace(old, new, 1))), field)
    assert re.search(pattern, p.message), p.message
    assert p.line == line, p


def test_axes_required_in_part_or_top(tmp_path: Path) -> None:
    text = PARTS.replace("settings: [{ways: 5, shots: 1}]\n", "").replace(
        "learners: [{name: t-maml, inner_steps: 2}]\n", ""
    )
    problems = problems_of(write(tmp_path, text))
    assert [(p.field, p.line, p.message) for p in problems] == [
        ("parts[0].settings", 6, "required (in this part or at the top level)"),
        ("parts[0].learners", 6, "required (in this part or at the top level)"),
        ("parts[1].settings", 10, "required (in this part or at the top level)"),
    ]
    # without parts, the four axes are required at the top level
    problems = problems_of(write(tmp_path, "name: x\ndatasets: [{name: t-data}]\n"))
    assert [(p.field, p.message) for p in problems] == [
        ("settings", "required"),
        ("backbones", "required"),
        ("learners", "required"),
    ]


def test_invalid_top_level_learner_used_by_a_part_is_reported_once(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, PARTS.replace("inner_steps: 2}", "inner_steps: -2}")))
    assert [(p.field, p.line) for p in problems] == [("learners[0].inner_steps", 6)]


@pytest.mark.parametrize(
    ("old", "new", "field", "other"),
    [
        # part big repeats part small's cell (same everything, seed 0 included)
        (
            "  - name: big\n",
            "  - name: again\n"
            f"    datasets: [{{name: {DATA}, image_size: 16}}]\n"
            "    backbones: [{name: conv4, hidden: 8}]\n"
            "    train: {lr: 0.01}\n"
            "    seeds: [1]\n"
            "  - name: big\n",
            "parts[1]",
            "a cell of parts[0]",
        ),
        (
            "    backbones: [{name: conv4, hidden: 16}]\n",
            "    backbones: [{name: conv4, hidden: 16}, {name: conv4, hidden: 16, blocks: 4}]\n",
            "parts[1].backbones[1]",
            "parts[1].backbones[0]",
        ),
        ("[4, 6]", "[4, 6, 4]", "parts[1].learners[1].inner_steps[2]", "inner_steps[0]"),
        (
            "inner_steps: 3}",
            "inner_steps: 4, inner_lr: 0.1}",
            "parts[1].learners[1]",
            "parts[1].learners[0]",
        ),
        ("seeds: [7]", "seeds: [7, 7]", "parts[1].seeds[1]", "parts[1].seeds[0]"),
    ],
)
def test_duplicate_cells_across_and_within_parts(tmp_path, old, new, field, other) -> None:
    assert old in PARTS
    text = PARTS.replace(old, new, 1)
    if "inner_lr: 0.1}" in new:  # the t-mrml entry must repeat the first one's values
        text = text.replace("inner_lr: 0.2", "inner_lr: 0.1").replace("t-mrml", MAML)
        text = text.replace("        train: {meta_batch: 8}\n", "")
        text = text.replace("[4, 6]", "[4, 5]")
    problems = problems_of(write(tmp_path, text))
    assert [p.field for p in problems] == [field], problems
    assert "duplicate cell" in problems[0].message and other in problems[0].message


def test_schema_describes_parts() -> None:
    schema = suite_json_schema()
    assert schema["required"] == ["name"]
    assert {"required": ["parts"]} in schema["anyOf"]
    part = schema["$defs"]["Part"]
    assert part["additionalProperties"] is False
    assert set(part["properties"]) == {
        "name",
        "description",
        "seeds",
        "datasets",
        "settings",
        "backbones",
        "train",
        "test",
        "learners",
    }
    assert schema["properties"]["parts"]["items"] == {"$ref": "#/$defs/Part"}
    assert {MAML, MRML} <= set(variants(schema, part["properties"]["learners"]))
