"""The walk of a suite and of ``cg_steps`` from ``memcomp run`` to the learner has no returns
(issue 19's "done when"): ``benchmarks/suite_walk.py``, run as a user runs it, with the cell in
a child process (the path users take).

A return is a call into a memcomp file the walk had already left for the same value; the walk
must still reach the learner's constructor (else zero returns would prove nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_walks_of_the_suite_and_of_cg_steps_have_no_returns(tmp_path: Path) -> None:
    out = tmp_path / "walk.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "suite_walk.py"), "--isolation", "process",
           "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    walks = json.loads(out.read_text())
    assert set(walks) == {"suite", "cg_steps"}
    for key, walk in walks.items():
        back = [f"{s['file']}:{s['function']}" for s in walk["walk"] if s["return"]]
        assert walk["returns"] == len(back) == 0, f"{key} returns to {back}"
        assert walk["stops"] == len(walk["walk"]) > 10
    last = walks["cg_steps"]["walk"][-1]
    assert last["file"].startswith("memcomp/learners/") and last["function"].endswith("__init__")
    files = [s["file"] for s in walks["cg_steps"]["walk"]]
    assert "memcomp/engine/cell.py" in files  # the child's stops are in the walk
