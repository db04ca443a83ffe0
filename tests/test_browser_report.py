"""report.html, index.html and compare.html in a real headless browser (system Chromium driven
by Playwright), inside a private network namespace: no console error, no request but the page
itself, tables sort on a header click, filters hide rows, every plot draws something.

Skipped, with the reason, where Chromium, Playwright or ``unshare -n`` (root) is missing;
.ci/run installs Chromium and Playwright so these run in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_results import shared_report, shared_run
from typer.testing import CliRunner

from memcomp.cli import app

CHECK = Path(__file__).with_name("browser_check.py")
CHROMIUM = os.environ.get("MEMCOMP_CHROMIUM", "/usr/bin/chromium")


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MEMCOMP_CHROMIUM)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install '.[browser]')"
    if shutil.which("unshare") is None:
        return "no unshare(1) to make a private network namespace"
    try:
        ok = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -n failed: {e}"
    if ok.returncode != 0:
        return "cannot make a private network namespace (unshare -n needs root)"
    return None


pytestmark = pytest.mark.skipif(bool(_why_no_browser()), reason=str(_why_no_browser()))


def browse(page: Path, *args: str) -> dict[str, Any]:
    """Run browser_check.py on ``page`` in a fresh network namespace (loopback up, nothing
    else) and return its findings."""
    inner = 'ip link set lo up 2>/dev/null; exec "$0" "$@"'
    cmd = ["unshare", "-n", "sh", "-c", inner, sys.executable, str(CHECK), str(page), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def assert_clean(found: dict[str, Any]) -> None:
    assert found["errors"] == []
    assert found["requests"] == [found["url"]]  # the page itself, nothing else
    for plot in found["plots"]:
        assert plot["width"] > 50 and plot["height"] > 50, plot
        assert plot["drawn"] > 3 and plot["colours"] > 2, plot


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_report(tmp_path_factory)[0]


def test_report_page_loads_sorts_filters_and_draws(report_page: Path) -> None:
    found = browse(
        report_page,
        "--sort", "table-cells:seed",
        "--sort", "table-cells:peak_mem_mb",
        "--filter", "table-cells:learner:maml",
        "--search", "table-cells:fake-error",
    )  # fmt: skip
    assert_clean(found)
    assert found["title"] == "memcomp report: tiny"
    seed, mem = found["sort"]
    assert seed["before"] != sorted(seed["before"])  # the run order, not sorted yet
    assert seed["first"] == sorted(seed["before"]) and seed["first_aria"] == "ascending"
    assert seed["second"] == sorted(seed["before"], reverse=True)
    assert seed["second_aria"] == "descending"
    numbers = [float(v) for v in mem["first"] if v]
    assert numbers == sorted(numbers) and mem["first"][-2:] == ["", ""]  # failed cells last
    flt = found["filter"][0]
    assert flt["shown"] == ["maml", "maml"] and flt["total"] == 6 and flt["after_reset"] == 6
    assert flt["count"] == "2 of 6 rows"
    rows = found["search"][0]["rows"]
    assert len(rows) == 2 and all("fake-error" in r for r in rows)
    ids = [p["id"] for p in found["plots"]]
    assert {"plot-memory", "plot-val_vs_time", "plot-phase-memory"} <= set(ids)
    assert sum(i.startswith("plot-cell-") for i in ids) == 4  # one per cell that trained


def test_interactive_report_draws_plotly_charts_offline(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    res = CliRunner().invoke(
        app, ["report", str(run), "--out", str(tmp_path), "--plots", "interactive"]
    )
    assert res.exit_code == 0, res.output
    found = browse(tmp_path / "report.html")
    assert_clean(found)  # no console error, no request but the page (plotly.js is inline)
    charts = {c["id"]: c for c in found["plotly"]}
    assert set(charts) == {"plot-memory", "plot-val_vs_time"}
    memory, timing = charts["plot-memory"], charts["plot-val_vs_time"]
    assert memory["svgs"] >= 1 and memory["bars"] >= 2 and memory["traces"] >= 2, memory
    assert timing["svgs"] >= 1 and timing["lines"] == timing["traces"] >= 2, timing
    assert "learner" in memory["hover"] and "K = " in memory["hover"], memory
    assert " MB" in memory["hover"] or "OOM" in memory["hover"], memory
    assert "val acc" in timing["hover"] and " s" in timing["hover"], timing
    assert "plot-memory" not in [p["id"] for p in found["plots"]]  # the SVG's place is taken


def test_index_and_compare_pages_work_in_the_browser(run: Path, tmp_path: Path) -> None:
    shutil.copytree(run, tmp_path / "results" / "tiny" / "20260101-000000")
    shutil.copytree(run, tmp_path / "results" / "tiny" / "20260102-000000")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    found = browse(tmp_path / "results" / "index.html", "--sort", "table-runs:run")
    assert_clean(found)
    assert found["sort"][0]["second"] == ["tiny/20260102-000000", "tiny/20260101-000000"]
    page = tmp_path / "compare.html"
    a, b = sorted((tmp_path / "results" / "tiny").glob("2026*"))
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--html", str(page)])
    assert res.exit_code == 0, res.output
    found = browse(page, "--filter", "table-compare:metric:accuracy")
    assert_clean(found)
    assert found["filter"][0]["shown"] == ["accuracy"] * 4
