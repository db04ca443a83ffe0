"""Property test (issue 13): random and mutated results files (runs.csv, curves.csv,
episodes.csv, manifest.json) given to ``report`` and to ``run --resume`` give a clean result or
exit 2 naming the file, never a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.errors import MemcompError
from memcomp.exec.api import open_results, plan_run

FILES = ("runs.csv", "curves.csv", "episodes.csv", "manifest.json")
SUITE = {
    "name": "fuzzed",
    "seeds": [0, 1],
    "device": "cpu",
    "datasets": [{"name": "fake-tiny"}],
    "settings": [{"ways": 3, "shots": 1, "queries": 2}],
    "backbones": [{"name": "conv4", "hidden": 4}],
    "train": {"iterations": 2, "meta_batch": 1, "eval_every": 1, "val_episodes": 2},
    "test": {"episodes": 3},
    "learners": [{"name": "fake-ok"}],
}
runner = CliRunner()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["ok", "oom", "nan", "inf", "", "maml", "cpu", "1e400", '"', ",", "\n"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished results folder of a tiny suite, and the suite file."""
    tmp = tmp_path_factory.mktemp("fuzz-base")
    suite = tmp / "s.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    res = runner.invoke(
        app, ["run", str(suite), "--out", str(tmp / "out"), "--isolation", "inline"]
    )
    assert res.exit_code == 0, res.output
    (d,) = [p.parent for p in (tmp / "out").glob("*/*/manifest.json")]
    return d, suite


def mutate_csv(text: str, draw: st.DrawFn) -> str:
    lines = text.splitlines()
    kind = draw(st.sampled_from(["cell", "drop_col", "dup_row", "header", "extra", "quote"]))
    rows = [line.split(",") for line in lines]
    if not rows:
        return text
    i = draw(st.integers(0, len(rows) - 1))
    j = draw(st.integers(0, max(0, len(rows[i]) - 1)))
    if kind == "cell":
        rows[i][j] = str(draw(scalars)).replace("\n", " ")
    elif kind == "drop_col":
        rows = [r[:j] + r[j + 1 :] for r in rows]
    elif kind == "dup_row":
        rows.insert(i, list(rows[i]))
    elif kind == "header":
        rows[0][min(j, len(rows[0]) - 1)] = draw(
            st.sampled_from(["cell_id", "status", "", "learner", "x"])
        )
    elif kind == "extra":
        rows[i].append("1")
    else:
        rows[i][j] = '"' + rows[i][j]
    return "\n".join(",".join(r) for r in rows) + "\n"


def mutate_json(text: str, draw: st.DrawFn) -> str:
    data = json.loads(text)
    if draw(st.booleans()):
        return json.dumps(draw(json_values))
    keys = list(data) + ["suite", "cells", "resumes", "results_schema", "device", "versions"]
    data[draw(st.sampled_from(keys))] = draw(json_values)
    return json.dumps(data)


@st.composite
def damage(draw: st.DrawFn) -> list[tuple[str, bytes | None]]:
    """For one to three results files: new bytes (None: the file is deleted)."""
    names = draw(st.lists(st.sampled_from(FILES), min_size=1, max_size=3, unique=True))
    hows = st.sampled_from(["bytes", "truncate", "tear", "structured", "delete"])
    return [(name, draw(hows)) for name in names]  # the details are drawn in apply()


def apply(d: Path, plan: list[tuple[str, Any]], draw: st.DrawFn) -> None:
    for name, how in plan:
        path = d / name
        raw = path.read_bytes() if path.exists() else b""
        if how == "delete":
            path.unlink(missing_ok=True)
        elif how == "truncate":
            path.write_bytes(raw[: draw(st.integers(0, len(raw)))])
        elif how == "tear":  # an interrupted append: the last line cut short
            start = raw.rstrip(b"\n").rfind(b"\n") + 1
            path.write_bytes(raw[: draw(st.integers(start, max(start, len(raw) - 1)))])
        elif how == "bytes":
            at = draw(st.integers(0, len(raw)))
            path.write_bytes(raw[:at] + draw(st.binary(max_size=12)) + raw[at:])
        else:
            text = raw.decode()
            new = mutate_json(text, draw) if name.endswith(".json") else mutate_csv(text, draw)
            path.write_text(new)


def copy_of(src: Path) -> Path:
    dst = Path(tempfile.mkdtemp(prefix="fuzz-")) / "fuzzed" / src.name
    shutil.copytree(src, dst)
    return dst


@contextlib.contextmanager
def damaged_copy(src: Path, data: st.DataObject) -> Iterator[tuple[Path, list[str]]]:
    """A copy of ``src`` damaged by a drawn plan, and the names of the files it damaged."""
    d = copy_of(src)
    plan = data.draw(damage())
    apply(d, plan, data.draw)
    try:
        yield d, [n for n, _ in plan]
    finally:
        shutil.rmtree(d.parent.parent, ignore_errors=True)


def invoke_cleanly(args: list[str], damaged: list[str]) -> None:
    """Run the CLI: no exception escapes, and it succeeds or exits 2 naming a damaged file."""
    res = runner.invoke(app, args)
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    assert exc is None, f"{damaged}: {exc!r}"
    assert_clean(res.exit_code, res.output, damaged)


def test_a_shifted_row_names_the_file_and_column(base: tuple[Path, Path]) -> None:
    """Found by the fuzz: a stray quote shifts a row so that text lands in a number column;
    report raised ValueError("could not convert string to float: 'native'")."""
    d = copy_of(base[0])
    try:
        runs = pd.read_csv(d / "runs.csv")
        runs["test_acc"] = runs["test_acc"].astype(object)
        runs.loc[0, "test_acc"] = "native"
        runs.to_csv(d / "runs.csv", index=False)
        res = runner.invoke(app, ["report", str(d)])
        assert res.exit_code == 2, res.output
        flat = " ".join(res.output.split())
        assert "runs.csv: column 'test_acc' holds 'native' on line 2, not a number" in flat
        with pytest.raises(MemcompError, match="column 'test_acc' holds 'native'"):
            plan_run(base[1], resume=d, isolation="inline")
    finally:
        shutil.rmtree(d.parent.parent, ignore_errors=True)


def assert_clean(code: int, output: str, damaged: list[str]) -> None:
    assert code in (0, 2), output
    assert "Traceback" not in output
    if code == 2:
        flat = "".join(output.split())
        assert any(name in flat for name in damaged), output


FUZZ = settings(
    max_examples=int(os.environ.get("MEMCOMP_FUZZ_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each example is slow
)


@FUZZ
@given(data=st.data())
def test_report_on_damaged_results(base: tuple[Path, Path], data: st.DataObject) -> None:
    with damaged_copy(base[0], data) as (d, damaged):
        invoke_cleanly(["report", str(d), "--format", "md,tex,csv"], damaged)


@FUZZ
@given(data=st.data())
def test_resume_of_damaged_results(base: tuple[Path, Path], data: st.DataObject) -> None:
    """Planning and opening the resumed folder (everything --resume does before running cells)."""
    with damaged_copy(base[0], data) as (d, damaged):
        try:
            open_results(plan_run(base[1], resume=d, isolation="inline"))
        except MemcompError as e:
            assert_clean(e.exit_code, str(e), [*damaged, str(d)])


def test_an_all_digit_cell_id_is_read_as_text(tmp_path: Path) -> None:
    """Found by the fuzz: cell_id was read as a number when every id looked like one (about 1
    cell in 280 has an all-digit id); a leading zero was lost, so resume re-ran a done cell."""
    from memcomp.results.resume import completed_ids
    from memcomp.results.store import ResultsDir

    (tmp_path / "runs.csv").write_text("cell_id,status,test_acc\n012345678901,ok,50\n")
    (tmp_path / "episodes.csv").write_text("cell_id,episode,acc\n012345678901,0,50\n")
    rd = ResultsDir(tmp_path)
    assert completed_ids(rd) == {"012345678901"}
    assert rd.runs()["cell_id"].tolist() == rd.episodes()["cell_id"].tolist() == ["012345678901"]


def test_a_duplicated_runs_row_names_the_file_and_lines(base: tuple[Path, Path]) -> None:
    """Found by the fuzz: two rows of one cell made report raise InvalidIndexError."""
    d = copy_of(base[0])
    try:
        lines = (d / "runs.csv").read_text().splitlines(keepends=True)
        (d / "runs.csv").write_text("".join([*lines, lines[1]]))
        res = runner.invoke(app, ["report", str(d)])
        assert res.exit_code == 2, res.output
        flat = " ".join(res.output.split())
        assert "runs.csv: cell " in flat and f"has 2 rows (lines 2, {len(lines) + 1})" in flat
    finally:
        shutil.rmtree(d.parent.parent, ignore_errors=True)


@FUZZ
@given(data=st.data())
def test_merge_of_damaged_results(base: tuple[Path, Path], data: st.DataObject) -> None:
    """``merge`` of a damaged folder with an intact one: a merged folder or exit 2."""
    whole = copy_of(base[0])
    try:
        with damaged_copy(base[0], data) as (d, damaged):
            out = d.parent.parent / "merged"
            invoke_cleanly(["merge", str(whole), str(d), "--out", str(out)], [*damaged, str(d)])
    finally:
        shutil.rmtree(whole.parent.parent, ignore_errors=True)


@FUZZ
@given(data=st.data())
def test_status_on_damaged_results(base: tuple[Path, Path], data: st.DataObject) -> None:
    """``status`` reads the manifest, runs.csv and the ends of curves/episodes (issue 20)."""
    with damaged_copy(base[0], data) as (d, damaged):
        invoke_cleanly(["status", str(d)], [*damaged, str(d)])


@FUZZ
@given(data=st.data())
def test_compare_on_damaged_results(base: tuple[Path, Path], data: st.DataObject) -> None:
    """``compare`` (with --fail-on regression) of an intact folder and a damaged one, both ways."""
    whole = copy_of(base[0])
    try:
        with damaged_copy(base[0], data) as (d, damaged):
            for a, b in ((whole, d), (d, whole)):
                args = ["compare", str(a), str(b), "--fail-on", "regression"]
                res = runner.invoke(app, args)
                exc = res.exception if not isinstance(res.exception, SystemExit) else None
                assert exc is None, f"{damaged}: {exc!r}"
                assert res.exit_code in (0, 1, 2), res.output  # 1: a regression found
                if res.exit_code != 1:
                    assert_clean(res.exit_code, res.output, [*damaged, str(d)])
    finally:
        shutil.rmtree(whole.parent.parent, ignore_errors=True)
