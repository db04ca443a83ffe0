"""Open a memcomp HTML page in headless Chromium (Playwright driving the system binary) and
report what a user would see, as JSON on stdout (plotly charts of ``--plots interactive``
included: drawn, and what hovering a point shows). Run by tests/test_browser_report.py inside a
private network namespace (``unshare -n``), so any network request would also fail.

usage: python browser_check.py PAGE [--sort TABLE:COLUMN] [--filter TABLE:COLUMN:VALUE]
                               [--search TABLE:TEXT] [--screenshot PNG] [--viewport WxH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("MEMCOMP_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
COLUMN_JS = """([t, c]) => {
  const table = document.getElementById(t);
  const i = [...table.tHead.rows[0].cells].map(h => h.textContent.trim()).indexOf(c);
  return [...table.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[i].textContent.trim());
}"""
HEAD_INDEX_JS = """([t, c]) => [...document.getElementById(t).tHead.rows[0].cells]
  .map(h => h.textContent.trim()).indexOf(c)"""
DRAWN_JS = """el => [...el.querySelectorAll('path,rect,polyline,circle,line,use,text')]
  .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 || r.height > 0; })
  .length"""

PLOTLY_JS = """() => [...document.querySelectorAll('figure.mc-plotly')].map(f => {
  const plot = f.querySelector('.js-plotly-plot');
  const all = s => plot ? plot.querySelectorAll(s).length : 0;
  return {id: f.id, svgs: all('.main-svg'), bars: all('.barlayer .point'),
          lines: all('.scatterlayer .trace .js-line'),
          traces: plot && plot.data ? plot.data.length : 0};
})"""


def column(page: Page, table: str, col: str) -> list[str]:
    return page.evaluate(COLUMN_JS, [table, col])


def sort_check(page: Page, table: str, col: str) -> dict[str, Any]:
    head = page.locator(f"#{table} thead th").nth(page.evaluate(HEAD_INDEX_JS, [table, col]))
    out: dict[str, Any] = {"before": column(page, table, col)}
    head.click()
    out["first"], out["first_aria"] = column(page, table, col), head.get_attribute("aria-sort")
    head.click()
    out["second"], out["second_aria"] = column(page, table, col), head.get_attribute("aria-sort")
    return out


def filter_check(page: Page, table: str, col: str, value: str) -> dict[str, Any]:
    bar = page.locator(f"div.wrap:has(#{table}) .mc-filters")
    total = len(column(page, table, col))
    bar.locator(f'select[name="{col}"]').select_option(value)
    shown = column(page, table, col)
    count = bar.locator(".mc-count").inner_text()
    bar.locator(f'select[name="{col}"]').select_option("")
    return {
        "total": total,
        "shown": shown,
        "count": count,
        "after_reset": len(column(page, table, col)),
    }


def search_check(page: Page, table: str, text: str) -> dict[str, Any]:
    box = page.locator(f"div.wrap:has(#{table}) .mc-filters input")
    box.fill(text)
    rows = page.evaluate(
        "t => [...document.getElementById(t).tBodies[0].rows].filter(r => !r.hidden)"
        ".map(r => r.textContent)",
        table,
    )
    box.fill("")
    return {"rows": rows}


def plot_checks(page: Page) -> list[dict[str, Any]]:
    from PIL import Image

    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    plots = []
    for fig in page.locator("figure.mc-plot").all():
        svg = fig.locator("svg").first
        box = svg.bounding_box() or {"width": 0, "height": 0}
        png = Image.open(io.BytesIO(svg.screenshot())).convert("RGB")
        colours = len(png.getcolors(maxcolors=1 << 20) or [])
        plots.append(
            {
                "id": fig.get_attribute("id"),
                "width": box["width"],
                "height": box["height"],
                "drawn": svg.evaluate(DRAWN_JS),
                "colours": colours,
            }
        )
    return plots


def plotly_checks(page: Page) -> list[dict[str, Any]]:
    """Each plotly chart: how much it drew, and the hover label of its first point."""
    charts = page.evaluate(PLOTLY_JS)
    for chart in charts:
        point = page.locator(f"#{chart['id']} .point").first
        chart["hover"] = ""
        if not point.count():
            continue
        point.evaluate("e => e.scrollIntoView({block: 'center'})")
        box = point.bounding_box()
        if box:
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            label = page.locator(f"#{chart['id']} .hoverlayer .hovertext")
            label.first.wait_for(timeout=5000)
            chart["hover"] = label.first.text_content() or ""
        page.mouse.move(0, 0)
    return charts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("page", type=Path)
    ap.add_argument("--sort", action="append", default=[])
    ap.add_argument("--filter", action="append", default=[])
    ap.add_argument("--search", action="append", default=[])
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--viewport", default="1280x900", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    url = args.page.resolve().as_uri()
    result: dict[str, Any] = {"url": url, "errors": [], "requests": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        width, height = (int(v) for v in args.viewport.split("x"))
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: m.type == "error" and result["errors"].append(m.text))
        page.on("pageerror", lambda e: result["errors"].append(str(e)))
        page.on("request", lambda r: result["requests"].append(r.url))
        page.goto(url, wait_until="load")
        result["title"] = page.title()
        if args.screenshot:
            page.screenshot(path=str(args.screenshot))
        result["sort"] = [sort_check(page, *s.split(":", 1)) for s in args.sort]
        result["filter"] = [filter_check(page, *f.split(":", 2)) for f in args.filter]
        result["search"] = [search_check(page, *s.split(":", 1)) for s in args.search]
        result["plotly"] = plotly_checks(page)
        result["plots"] = plot_checks(page)
        browser.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
