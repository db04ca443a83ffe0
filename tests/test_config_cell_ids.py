"""Cell ids never change for an existing suite: every checked-in suite expands to the ids that
main gives without the typed suite model (issue 19), recorded in ``tests/data/cell-ids-main.json``
from main at b291c84 (re-recorded at the merge: main had changed ids since 18ec552 with
execution: auto and precision; ``[c.id for c in expand(load_suite(path))]``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memcomp.config import expand, load_suite

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "tests" / "data" / "cell-ids-main.json").read_text())


@pytest.mark.parametrize("suite", sorted(RECORDED))
def test_cell_ids_are_those_recorded_from_main(suite: str) -> None:
    assert [c.id for c in expand(load_suite(ROOT / suite))] == RECORDED[suite]


def test_the_record_covers_quickstart_and_smoke() -> None:
    assert {"suites/quickstart.yaml", "suites/smoke.yaml"} <= set(RECORDED)
    assert sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites").glob("*.yaml")) == sorted(
        RECORDED
    )
