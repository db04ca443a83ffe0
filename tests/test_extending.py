"""The README's "Extending" commands, exactly as written, from ``memcomp new learner mine`` to a
report with mine beside maml and mrml.

They run in a temporary folder whose ``.venv`` is a fresh virtual environment that sees this
checkout and the test environment's packages (a ``.pth`` file; no network: pip builds without
isolation, from no index). Only the numbers in the generated ``mine/suite.yaml`` are shrunk
after ``memcomp new`` (a few iterations and episodes) so that the test takes a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- extending-commands"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text[text.index(MARK) :].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def make_venv(folder: Path) -> Path:
    """``folder/.venv``: no pip of its own; this checkout first on its path, then our packages."""
    venv = folder / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    purelib = sysconfig.get_paths()["purelib"]
    (site / "_memcomp_test.pth").write_text(f"{REPO}\nimport site; site.addsitedir({purelib!r})\n")
    for tool, module in (("pip", "pip"), ("memcomp", "memcomp")):
        shim = venv / "bin" / tool
        shim.write_text(f'#!/bin/sh\nexec "$(dirname "$0")/python" -m {module} "$@"\n')
        shim.chmod(0o755)
    return venv


SHRINK = (
    "import re, sys; p = sys.argv[1]; s = open(p).read(); "
    "s = re.sub(r'image_size: \\d+', 'image_size: 16', s); "
    "s = re.sub(r'hidden: \\d+', 'hidden: 4', s); "
    "s = s.replace('iterations: 100', 'iterations: 2').replace('eval_every: 25', 'eval_every: 1')"
    ".replace('val_episodes: 100', 'val_episodes: 2').replace('episodes: 200', 'episodes: 3'); "
    "open(p, 'w').write(s)"
)


@pytest.mark.slow
def test_readme_extending_commands(tmp_path: Path) -> None:
    commands = readme_commands()
    assert commands[1] == "memcomp new learner mine" and commands[0].startswith("source ")
    make_venv(tmp_path)
    script = ["set -euo pipefail"]
    for line in commands:
        script.append(line)
        if line.startswith("memcomp new learner"):
            script.append(f'python -c "{SHRINK}" mine/suite.yaml')
    env = {**os.environ, "PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1", "COLUMNS": "150"}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)
    env.pop("MEMCOMP_PLUGINS", None)
    env["MEMCOMP_CACHE"] = os.environ.get("MEMCOMP_CACHE", str(tmp_path / "cache"))
    out = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "mine: ok" in out.stdout
    runs = next((tmp_path / "results" / "mine-vs-builtins").glob("*/runs.csv")).read_text()
    assert all(re.search(rf"\b{n}\b", runs) for n in ("mine", "maml", "mrml"))
    tables = [p.read_text() for p in (tmp_path / "results").rglob("report/*.md")]
    assert any("mine" in t and "maml" in t and "mrml" in t for t in tables), tables
