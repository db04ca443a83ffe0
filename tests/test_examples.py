"""The example plugin ``examples/metasgd`` (Meta-SGD): it keeps the contract (memcomp verify) and
runs in its suite beside maml and mrml, with its results in the report. CI installs it from its
folder (Makefile ``install``); here it is imported from the folder when it is not installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memcomp import plugins
from memcomp.verify import verify

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "metasgd"


@pytest.fixture
def metasgd(monkeypatch: pytest.MonkeyPatch) -> None:
    before = plugins.loaded()
    monkeypatch.syspath_prepend(str(EXAMPLE))
    plugins.load(["memcomp_metasgd"])
    yield
    plugins._loaded[:] = before  # later cell processes need not find the folder


def test_metasgd_keeps_the_contract(metasgd: None) -> None:
    checks = {c.name: c for c in verify("metasgd")}
    assert not [c for c in checks.values() if c.failed], checks
    assert checks["meta-gradient vs finite differences"].status == "pass"


@pytest.mark.slow
def test_metasgd_suite_beside_maml_and_mrml_reaches_the_report(
    metasgd: None, tmp_path: Path
) -> None:
    from memcomp import build_report, run_suite

    text = (EXAMPLE / "suite.yaml").read_text()
    for pattern, tiny in [
        (r"image_size: \d+", "image_size: 16"), (r"hidden: \d+", "hidden: 4"),
        (r"iterations: \d+", "iterations: 2"), (r"eval_every: \d+", "eval_every: 1"),
        (r"val_episodes: \d+", "val_episodes: 2"), (r"episodes: 200", "episodes: 3"),
    ]:  # fmt: skip
        text = re.sub(pattern, tiny, text)
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    folder, outcomes = run_suite(suite, tmp_path / "results", isolation="inline", device="cpu")
    assert [o.row["status"] for o in outcomes] == ["ok"] * 3
    assert [o.row["learner"] for o in outcomes] == ["metasgd", "maml", "mrml"]
    build_report(folder, None, ("md",))
    tables = [p.read_text() for p in (folder / "report").glob("*.md")]
    assert any(all(n in t for n in ("metasgd", "maml", "mrml")) for t in tables)
