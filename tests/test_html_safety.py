"""Hostile names in the HTML pages: a results folder named like a ``javascript:`` URL links as a
quoted ``./`` path (never a script), and script payloads planted in every user text (suite
text, learner names, labels, errors, log tails, manifest fields) come out escaped."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from helpers_results import shared_run
from typer.testing import CliRunner

from memcomp.cli import app
from memcomp.report.htmlkit import path_href, table_html

EVIL = "javascript:document.body.innerHTML='PWNED',0"
SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
CLICK = Path(__file__).with_name("browser_click.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'\bhref="([^"]*)"', page)]


def report(*args: str) -> str:
    res = CliRunner().invoke(app, ["report", *args])
    assert res.exit_code == 0, res.output
    return res.output


def evil_results(run: Path, root: Path) -> Path:
    """results/ with one run in a suite folder named like a javascript: URL, one plain."""
    results = root / "results"
    shutil.copytree(run, results / EVIL / "20260101-000000")
    shutil.copytree(run, results / "tiny" / "20260102-000000")
    report(str(results))
    return results


def test_path_href_quotes_every_segment_behind_dot_slash() -> None:
    assert path_href("javascript:alert(1)") == "./javascript%3Aalert%281%29"
    assert path_href(f"{EVIL}/r/report.html").startswith("./javascript%3Adocument.body")
    assert path_href("a b/c?d#e/x.html") == "./a%20b/c%3Fd%23e/x.html"
    assert path_href("../up/report.html") == "./../up/report.html"
    with pytest.raises(ValueError):
        path_href("/etc/passwd")


def test_table_links_never_carry_a_scheme() -> None:
    df = pd.DataFrame({"run": ["a", "b"], "n": [1, 2]})
    out = table_html(df, "t", links={"a": "javascript:alert(1)", "b": "#cell-b"})
    assert hrefs(out) == ["./javascript%3Aalert%281%29", "#cell-b"]


def test_index_links_a_script_named_folder_as_a_quoted_relative_path(
    run: Path, tmp_path: Path
) -> None:
    results = evil_results(run, tmp_path)
    index = (results / "index.html").read_text()
    links = hrefs(index)
    pages = [h for h in links if not h.startswith("#")]
    assert len(pages) == 2, links
    assert all(h.startswith("./") for h in pages), pages
    assert not any("javascript:" in h.lower() for h in links), links
    assert pages[0].startswith("./javascript%3Adocument.body.innerHTML%3D%27PWNED%27%2C0/")
    assert all((results / unquote(h)).is_file() for h in pages)  # the links still work
    assert html.escape(EVIL) in index  # the name is shown, as text


def plant_payloads(run: Path, folder: Path) -> Path:
    """A copy of ``run`` whose every user text carries a script payload."""
    shutil.copytree(run, folder)
    runs = pd.read_csv(folder / "runs.csv")
    failed = runs.index[runs["status"] != "ok"]
    runs["label"] = runs["label"].astype(str) + SCRIPT + IMG
    runs["suite"] = "tiny" + SCRIPT
    runs["device_name"] = IMG
    runs["learner"] = runs["learner"].astype(str) + SCRIPT
    runs["error"] = runs["error"].astype(object)
    runs.loc[failed, "error"] = f"boom {SCRIPT}{IMG}"
    runs.to_csv(folder / "runs.csv", index=False)
    for cid in runs.loc[failed, "cell_id"]:
        (folder / "logs").mkdir(exist_ok=True)
        (folder / "logs" / f"{cid}.log").write_text(f"last words {SCRIPT}\n{IMG}\n")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["suite"] = "tiny" + SCRIPT
    manifest["suite_text"] = f"name: tiny\ndescription: '{SCRIPT}{IMG}'\n"
    manifest["device_name"] = IMG
    manifest["memcomp_version"] = SCRIPT
    manifest["options"] = {"only": SCRIPT, IMG: 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def assert_escaped(page: str, scripts: int = 3) -> None:
    assert SCRIPT not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert html.escape(SCRIPT) in page  # shown, as text
    own = page.count("<script")
    assert own == page.count("</script>") and own <= scripts, own  # memcomp's own scripts only


def test_script_payloads_in_user_text_come_out_escaped(run: Path, tmp_path: Path) -> None:
    folder = plant_payloads(run, tmp_path / "results" / "tiny" / "20260101-000000")
    report(str(tmp_path / "results"))
    page = (folder / "report" / "report.html").read_text()
    assert_escaped(page)
    assert html.escape("last words " + SCRIPT) in page  # the log tail
    assert html.escape(f"boom {SCRIPT}") in page  # the error
    assert_escaped((tmp_path / "results" / "index.html").read_text())


def test_script_payloads_stay_text_in_interactive_charts(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    folder = plant_payloads(run, tmp_path / "tiny" / "20260101-000000")
    report(str(folder), "--plots", "interactive")
    page = (folder / "report" / "report.html").read_text()
    assert 'class="mc-plotly"' in page
    assert_escaped(page, scripts=8)


def _why_no_browser() -> str | None:
    from test_browser_report import _why_no_browser as why

    return why()


@pytest.mark.skipif(bool(_why_no_browser()), reason=str(_why_no_browser()))
def test_clicking_the_script_named_link_runs_no_script(run: Path, tmp_path: Path) -> None:
    results = evil_results(run, tmp_path)
    inner = 'ip link set lo up 2>/dev/null; exec "$0" "$@"'
    index = results / "index.html"
    cmd = ["unshare", "-n", "sh", "-c", inner, sys.executable, str(CLICK), str(index), EVIL]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert found["dialogs"] == [] and found["errors"] == [], found
    assert found["body"].strip() != "PWNED" and found["title"] == "memcomp report: tiny", found
    assert found["href"].startswith("./javascript%3A"), found
    assert found["url"].endswith("/20260101-000000/report/report.html"), found  # the run's page
