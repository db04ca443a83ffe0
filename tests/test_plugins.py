"""Plugin discovery for every command and process: entry points, ``--plugin``, a suite's
``plugins:``; a plugin that fails to import is exit 2 in one line; ``list`` shows the source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcomp import plugins
from memcomp.cli import app
from memcomp.cli.app import hoist_plugin_options
from memcomp.learners import LEARNERS

REPO = Path(__file__).resolve().parents[1]
PLUGIN = """
from pydantic import Field
import memcomp
from memcomp.learners.params import MamlParams

class DepthParams(MamlParams):
    depth: int = Field(2, ge=1, le=8, description="a plugin parameter")

memcomp.LEARNERS.register_lazy("{name}", "a plugin learner", DepthParams,
                               "memcomp.learners.maml:Maml")
"""
SUITE = """name: plug
plugins: [{module}]
datasets: [{{name: synthetic, image_size: 8, channels: 1}}]
settings: [{{ways: 2, shots: 1, queries: 1}}]
backbones: [{{name: conv4, hidden: 2, blocks: 1}}]
learners:
  - {{name: {name}, depht: 3}}
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on the path with module ``plugmod_<id>``; forgets it (and the learner) after."""
    before = plugins.loaded()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    plugins._loaded[:] = before
    for name in [n for n in LEARNERS.names() if n.startswith("plug-")]:
        LEARNERS._entries.pop(name)


def write_plugin(folder: Path, module: str, name: str) -> None:
    (folder / f"{module}.py").write_text(PLUGIN.format(name=name))


def fake_distribution(folder: Path, dist: str, group: str, name: str, module: str) -> None:
    """An installed distribution as importlib.metadata sees it: a .dist-info with entry points."""
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")


def memcomp_cli(
    args: list[str], path: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{REPO}", "COLUMNS": "200"}
    env.pop("MEMCOMP_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "memcomp", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_plugin_option_on_every_command_and_list_shows_the_source(plugin_dir: Path) -> None:
    write_plugin(plugin_dir, "plugmod_a", "plug-a")
    runner = CliRunner()
    res = runner.invoke(app, ["--plugin", "plugmod_a", "list", "learners"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "plug-a" in line)
    assert "module plugmod_a" in row
    assert "built-in" in next(line for line in res.output.splitlines() if "│ maml " in line)
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0 and '"learner plug-a"' in res.output and "depth" in res.output
    suite = plugin_dir / "s.yaml"
    suite.write_text(SUITE.format(module="plugmod_a", name="plug-a"))
    res = runner.invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert f"{suite}:7: learners[0].depht: unknown key 'depht'; did you mean 'depth'?" in res.output
    suite.write_text(SUITE.format(module="plugmod_a", name="plug-a").replace("depht", "depth"))
    res = runner.invoke(app, ["validate", str(suite)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output


def test_a_plugin_that_fails_to_import_is_exit_2_in_one_line(plugin_dir: Path) -> None:
    (plugin_dir / "plugbad.py").write_text("import numpyy_not_there\n")
    for args in (["--plugin", "plugbad", "list"], ["list", "--plugin=plugbad"]):
        res = memcomp_cli(args, plugin_dir)
        assert res.returncode == 2
        assert res.stderr.strip() == (
            "error: --plugin: cannot import plugin 'plugbad': ModuleNotFoundError: "
            "No module named 'numpyy_not_there'"
        )
    suite = plugin_dir / "s.yaml"
    suite.write_text(
        SUITE.format(module="plugbad", name="maml").replace("depht: 3", "inner_steps: 1")
    )
    res = memcomp_cli(["validate", str(suite)], plugin_dir)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {suite}:2: plugins[0]: cannot import plugin 'plugbad': ModuleNotFoundError: "
        "No module named 'numpyy_not_there'"
    )


def test_entry_points_are_found_by_every_command(tmp_path: Path) -> None:
    write_plugin(tmp_path, "plugep", "plug-ep")
    fake_distribution(tmp_path, "memcomp_plug_ep", "memcomp.learners", "plug-ep", "plugep")
    res = memcomp_cli(["list", "learners"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "memcomp_plug_ep" in next(ln for ln in res.stdout.splitlines() if "plug-ep" in ln)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        SUITE.format(module="plugep", name="plug-ep").replace("plugins: [plugep]\n", "")
    )
    res = memcomp_cli(["validate", str(suite)], tmp_path)
    assert res.returncode == 2
    assert f"{suite}:6: learners[0].depht: unknown key 'depht'; did you mean 'depth'?" in res.stderr
    bad = tmp_path / "broken"
    bad.mkdir()
    fake_distribution(bad, "memcomp_broken", "memcomp.datasets", "nothing", "plug_missing_mod")
    res = memcomp_cli(["list"], bad)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "error: entry point 'nothing' of memcomp_broken (memcomp.datasets): cannot import plugin "
        "'plug_missing_mod': ModuleNotFoundError: No module named 'plug_missing_mod'"
    )


def test_plugins_reach_cell_child_processes(plugin_dir: Path) -> None:
    """A suite's ``plugins:`` learner runs in a cell child process (which imports the module)."""
    from memcomp import run_suite

    write_plugin(plugin_dir, "plugmod_c", "plug-c")
    suite = plugin_dir / "s.yaml"
    text = SUITE.format(module="plugmod_c", name="plug-c").replace("depht: 3", "inner_steps: 1")
    text += "train: {iterations: 1, meta_batch: 1, eval_every: 1, val_episodes: 2}\n"
    suite.write_text(text + "test: {episodes: 2}\n")
    env = {"PYTHONPATH": f"{plugin_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _, (outcome,) = run_suite(suite, plugin_dir / "out", isolation="process", device="cpu")
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert outcome.row["status"] == "ok", outcome.row.get("error")
    assert outcome.row["learner"] == "plug-c"


def test_hoisting_plugin_options() -> None:
    argv = ["verify", "mine", "--plugin", "a", "--plugin=b", "--", "--plugin", "c"]
    assert hoist_plugin_options(argv) == [
        "--plugin", "a", "--plugin=b", "verify", "mine", "--", "--plugin", "c",
    ]  # fmt: skip


def test_skip_hook_gives_a_skipped_row(tmp_path: Path) -> None:
    """A learner's ``skip(cell)`` reason becomes ``status=skipped`` (and the run is still ok)."""
    import fake_learners

    from memcomp import run_suite

    class Picky(fake_learners.FakeOk):
        @classmethod
        def skip(cls, cell):  # noqa: ANN001, ANN206
            return "only 2-way tasks" if cell.setting.ways != 2 else None

    LEARNERS.register("plug-picky", "declines 3-way", fake_learners.FakeParams)(Picky)
    try:
        suite = tmp_path / "s.yaml"
        suite.write_text(
            "name: picky\ndatasets: [{name: fake-tiny}]\n"
            "settings: [{ways: 2, shots: 1, queries: 1}, {ways: 3, shots: 1, queries: 1}]\n"
            "backbones: [{name: conv4, hidden: 2, blocks: 1}]\nlearners: [{name: plug-picky}]\n"
            "train: {iterations: 1, meta_batch: 1, eval_every: 1, val_episodes: 2}\n"
            "test: {episodes: 2}\n"
        )
        _, outcomes = run_suite(suite, tmp_path / "out", isolation="inline", device="cpu")
    finally:
        LEARNERS._entries.pop("plug-picky")
    assert [o.row["status"] for o in outcomes] == ["ok", "skipped"]
    assert all(o.ok for o in outcomes) and outcomes[1].row["error"] == "only 2-way tasks"
