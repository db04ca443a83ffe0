"""Damaged results tables (issue 20): a torn last row or a header cut in half makes report,
compare (also --fail-on regression), status and merge exit 2 with one line naming the file and
the fix; ``run --resume`` repairs a torn tail; curves/episodes rows of a cell without a runs
row (a crash between the writes) are ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fake_learners  # noqa: F401 - registers fake-tiny and fake-ok
import pytest
import yaml
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.results.store import ResultsDir

SUITE = {
    "name": "damaged",
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


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished two-cell results folder and its suite file."""
    tmp = tmp_path_factory.mktemp("damage-base")
    suite = tmp / "s.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    res = runner.invoke(
        app, ["run", str(suite), "--out", str(tmp / "out"), "--isolation", "inline"]
    )
    assert res.exit_code == 0, res.output
    (d,) = [p.parent for p in (tmp / "out").glob("*/*/manifest.json")]
    return d, suite


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def tear_last_row(path: Path, fields: int) -> None:
    """Cut the last line of ``path`` after ``fields`` fields (no line end), as a kill would."""
    lines = path.read_text().splitlines(keepends=True)
    last = lines[-1].split(",")[:fields]
    path.write_text("".join(lines[:-1]) + ",".join(last))


def cut_header(path: Path) -> None:
    head = path.read_text().splitlines()[0]
    path.write_text(head[: len(head) // 2])


def commands(d: Path, whole: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "report": ["report", str(d)],
        "compare": ["compare", str(whole), str(d)],
        "compare --fail-on": ["compare", str(d), str(whole), "--fail-on", "regression"],
        "status": ["status", str(d)],
        "merge": ["merge", str(whole), str(d), "--out", str(tmp / "merged")],
    }


def one_line_error(args: list[str], name: str) -> str:
    res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, (args, res.output)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert name in lines[0] and lines[0].startswith("error:"), res.output
    return lines[0]


@pytest.mark.parametrize("damage", ["torn-13", "torn-mid-field", "header"])
@pytest.mark.parametrize("name", ["runs.csv", "curves.csv", "episodes.csv"])
def test_every_reader_exits_2_naming_the_file(
    base: tuple[Path, Path], tmp_path: Path, damage: str, name: str
) -> None:
    whole = copy(base[0], tmp_path / "whole" / "damaged" / "a")
    d = copy(base[0], tmp_path / "bad" / "damaged" / "b")
    if damage == "torn-13":
        tear_last_row(d / name, 13 if name == "runs.csv" else 2)
    elif damage == "torn-mid-field":
        (d / name).write_bytes((d / name).read_bytes()[:-4])
    else:
        cut_header(d / name)
    for what, args in commands(d, whole, tmp_path).items():
        line = one_line_error(args, str(d / name))
        fix = "--resume" if damage.startswith("torn") else "restore the file"
        assert fix in line, (what, line)
    assert not (tmp_path / "merged").exists()


def test_a_middle_row_with_too_few_fields_names_its_line(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    d = copy(base[0], tmp_path / "d")
    lines = (d / "runs.csv").read_text().splitlines(keepends=True)
    lines[1] = "a,b,c,d,e,f,g,h,i,j,k,l,m\n"
    (d / "runs.csv").write_text("".join(lines))
    line = one_line_error(["report", str(d)], "runs.csv")
    assert "line 2 has 13 fields" in line


def test_orphan_rows_of_a_cell_without_a_runs_row_are_ignored(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    """A crash after a cell's episodes and curves but before its runs row."""
    d = copy(base[0], tmp_path / "d")
    with open(d / "episodes.csv", "a") as f:
        f.write("orphan123456,0,55.0\norphan123456,1,45.0\n")
    with open(d / "curves.csv", "a") as f:
        f.write("orphan123456,1,0.5,40.0,1.0\n")
    rd = ResultsDir(d)
    assert "orphan123456" not in set(rd.episodes()["cell_id"])
    assert "orphan123456" not in set(rd.curves()["cell_id"])
    assert len(rd.episodes()) == len(ResultsDir(base[0]).episodes())
    res = runner.invoke(app, ["report", str(d), "--no-html"])
    assert res.exit_code == 0, res.output


def test_resume_repairs_a_torn_tail_and_reruns_that_cell(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    d = copy(base[0], tmp_path / "d")
    before = ResultsDir(d).raw_runs()
    torn_id = str(before["cell_id"].iloc[-1])
    tear_last_row(d / "runs.csv", 13)
    res = runner.invoke(app, ["run", str(base[1]), "--resume", str(d), "--isolation", "inline"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "removed a torn last line" in flat and "runs.csv" in flat
    assert "1 of 2 cells already done, running 1" in flat
    rd = ResultsDir(d)
    runs = rd.runs()
    assert sorted(runs["cell_id"]) == sorted(before["cell_id"])
    assert (runs["status"] == "ok").all()
    eps = rd.episodes()
    assert (eps["cell_id"] == torn_id).sum() == SUITE["test"]["episodes"]  # old rows replaced
    assert runner.invoke(app, ["report", str(d), "--no-html"]).exit_code == 0


def test_merge_survives_a_damaged_manifest_and_episodes(
    base: tuple[Path, Path], tmp_path: Path
) -> None:
    """An earlier attempt: merge raised TypeError("unhashable type: 'dict'")."""
    whole = copy(base[0], tmp_path / "whole")
    d = copy(base[0], tmp_path / "d")
    m = json.loads((d / "manifest.json").read_text())
    m["suite_text"] = {"a": 1}
    m["cells"] = ["x", {"y": 1}]
    m["precision"] = 3
    m["resumes"] = {"a": 1}
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "episodes.csv").write_text("cell_id,episode\n{},1\n")
    for args in commands(d, whole, tmp_path).values():
        res = runner.invoke(app, args)
        assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
        assert res.exit_code in (0, 2), res.output
        if res.exit_code == 2:
            assert len(res.output.strip().splitlines()) == 1, res.output
