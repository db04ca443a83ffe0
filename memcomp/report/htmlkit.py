"""Pieces of memcomp's self-contained HTML pages: the page shell (inline CSS and a small script
that makes every ``table.mc-table`` sortable by a header click and filterable), tables, inline
SVG figures and a small hand-drawn line chart. Nothing here refers to a file or a network address.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

import pandas as pd

__all__ = ["esc", "figure_svg", "line_svg", "page", "path_href", "plot_block", "table_html"]

LONG = 60  # characters: a longer cell wraps instead of widening its column

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1f3b57;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #d8dde6;padding:6px 24px;
z-index:2}nav a{margin-right:14px;color:#1f5fa8;text-decoration:none;font-size:13px}
main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #d8dde6;border-radius:6px;padding:10px 16px;
margin:14px 0}
h2{font-size:17px;margin:4px 0 8px}h3{font-size:15px;margin:10px 0 6px}
table.mc-table,table.kv{border-collapse:collapse;font-size:13px;margin:6px 0}
.mc-table th,.mc-table td,.kv th,.kv td{border:1px solid #d8dde6;padding:3px 8px;
text-align:left;vertical-align:top}
.mc-table th{background:#eef1f5;cursor:pointer;user-select:none;white-space:nowrap}
.mc-table th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
.mc-table th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
.mc-table tbody tr:nth-child(even){background:#fafbfc}
.mc-table td{white-space:nowrap}.mc-table td.long{white-space:normal;min-width:28em}
.kv th{background:#eef1f5;font-weight:600}
.wrap{overflow-x:auto}
.note{color:#5a6473;font-size:12px;margin:4px 0 8px}
.mc-filters{display:flex;gap:8px;align-items:center;margin:6px 0;font-size:12px;
flex-wrap:wrap}
.mc-filters input,.mc-filters select{font-size:12px;padding:2px 4px}
.mc-count{color:#5a6473}
figure.mc-plot{margin:8px 0}figure.mc-plot svg{max-width:100%;height:auto}
figcaption{color:#5a6473;font-size:12px}
pre{background:#f1f3f6;padding:8px;overflow-x:auto;font-size:12px;max-height:420px}
.status-ok{color:#1b7f3b}.status-bad{color:#b3261e;font-weight:600}
.regression{color:#b3261e;font-weight:600}.improvement{color:#1b7f3b}
details{margin:4px 0}summary{cursor:pointer}
"""

JS = r"""
(function () {
  "use strict";
  function text(cell) { return cell ? cell.textContent.trim() : ""; }
  function num(s) {
    var m = s.replace(/,/g, "").match(/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i);
    return m ? parseFloat(m[0]) : NaN;
  }
  function blank(s) { return s === "" || s === "\u2013" || s === "-"; }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var numeric = rows.every(function (r) {
      var v = text(r.cells[col]); return blank(v) || !isNaN(num(v));
    });
    rows.sort(function (a, b) {
      var x = text(a.cells[col]), y = text(b.cells[col]);
      if (blank(x) || blank(y)) { return blank(x) === blank(y) ? 0 : (blank(x) ? 1 : -1); }
      if (numeric) { return dir * (num(x) - num(y)); }
      return dir * x.localeCompare(y, undefined, {numeric: true});
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  function applyFilters(table, bar) {
    var query = bar.querySelector("input").value.toLowerCase();
    var selects = bar.querySelectorAll("select");
    var shown = 0, rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (r) {
      var ok = !query || r.textContent.toLowerCase().indexOf(query) >= 0;
      Array.prototype.forEach.call(selects, function (s) {
        if (s.value && text(r.cells[+s.dataset.col]) !== s.value) { ok = false; }
      });
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    bar.querySelector(".mc-count").textContent = shown + " of " + rows.length + " rows";
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.mc-table"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    heads.forEach(function (th, i) {
      th.tabIndex = 0;
      th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(table, i, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter") { sortBy(table, i, th); }
      });
    });
    var bar = document.createElement("div");
    bar.className = "mc-filters";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "filter rows\u2026";
    input.setAttribute("aria-label", "filter rows");
    input.addEventListener("input", function () { applyFilters(table, bar); });
    bar.appendChild(input);
    (table.dataset.filters || "").split(",").filter(Boolean).forEach(function (name) {
      var col = heads.findIndex(function (h) { return text(h) === name; });
      if (col < 0) { return; }
      var values = {};
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        values[text(r.cells[col])] = true;
      });
      var sel = document.createElement("select");
      sel.dataset.col = col;
      sel.name = name;
      sel.setAttribute("aria-label", "filter by " + name);
      sel.add(new Option("all " + name, ""));
      Object.keys(values).sort().forEach(function (v) { sel.add(new Option(v, v)); });
      sel.addEventListener("change", function () { applyFilters(table, bar); });
      bar.appendChild(sel);
    });
    var count = document.createElement("span");
    count.className = "mc-count";
    bar.appendChild(count);
    table.parentNode.insertBefore(bar, table);
    applyFilters(table, bar);
  });
  function openTarget() {
    var el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
"""


def esc(v: Any) -> str:
    """HTML-escaped text of a value; missing values are empty."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return html.escape(str(v))


def path_href(path: str | PurePath) -> str:
    """A relative path as a link address that cannot carry a scheme or a query: ``./`` then
    every segment URL-quoted (``javascript:x`` becomes ``./javascript%3Ax``). Escape it with
    :func:`esc` when it goes into an attribute."""
    parts = PurePath(path).parts
    if not parts or PurePath(path).is_absolute():
        raise ValueError(f"path_href takes a relative path, not {str(path)!r}")
    return "./" + "/".join(quote(part, safe="") for part in parts)


def safe_href(address: str) -> str:
    """``address`` when it is an in-page anchor (``#...``) or already made by
    :func:`path_href`, else :func:`path_href` of it: no link of a page can run script."""
    if address.startswith("#") or address.startswith("./"):
        return address
    return path_href(address)


def page(title: str, header: str, sections: Sequence[tuple[str, str, str]], head: str = "") -> str:
    """A whole HTML document: ``sections`` are (anchor id, heading, inner HTML); ``head`` is
    extra markup at the top of ``<head>`` (e.g. a ``<meta>``)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(
        f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{inner}</section>' for a, h, inner in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{head}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header>{header}</header><nav>{nav}</nav><main>{body}</main>"
        f"<script>{JS}</script></body></html>\n"
    )


def table_html(
    df: pd.DataFrame,
    table_id: str,
    filters: Sequence[str] = (),
    note: str = "",
    links: dict[str, str] | None = None,
) -> str:
    """A sortable, filterable table; ``filters`` names columns that get a drop-down filter.

    ``links`` maps a value of the first column to the address its cell links to: an in-page
    ``#anchor``, or a relative path (made a scheme-free ``./`` address by :func:`path_href`).
    """
    if df.columns.empty:
        return '<p class="note">(empty)</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for r in df.itertuples(index=False):
        cells = [esc(v) for v in r]
        if links and str(r[0]) in links:
            cells[0] = f'<a href="{esc(safe_href(links[str(r[0])]))}">{cells[0]}</a>'
        tds = [
            f'<td class="long">{c}</td>' if len(str(v)) > LONG else f"<td>{c}</td>"
            for c, v in zip(cells, r, strict=True)
        ]
        rows.append("<tr>" + "".join(tds) + "</tr>")
    data = f' data-filters="{esc(",".join(filters))}"' if filters else ""
    out = (
        f'<div class="wrap"><table class="mc-table" id="{esc(table_id)}"{data}>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return out + (f'<p class="note">{esc(note)}</p>' if note else "")


_SVG_START = re.compile(r"^.*?(?=<svg\b)", re.S)


def plot_block(svg: str, caption: str = "", plot_id: str = "") -> str:
    """An SVG document (a matplotlib file or :func:`line_svg`) inlined as a figure."""
    svg = _SVG_START.sub("", svg, count=1)
    ident = f' id="{esc(plot_id)}"' if plot_id else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="mc-plot"{ident}>{svg}{cap}</figure>'


def figure_svg(fig: Any) -> str:
    """A matplotlib figure as SVG text (text kept as text), closing the figure."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _ticks(lo: float, hi: float) -> tuple[float, float]:
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)


def line_svg(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    width: int = 420,
    height: int = 200,
) -> str:
    """A small line chart (one polyline per series, a point tooltip each) as SVG text."""
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True)]
    pts = [(float(x), float(y)) for x, y in pts if not (math.isnan(x) or math.isnan(y))]
    if not pts:
        return ""
    x0, x1 = _ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    y0, y1 = _ticks(min(p[1] for p in pts), max(p[1] for p in pts))
    left, right, top, bottom = 52, 10, 10, 34
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + w * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top + h * (1 - (y - y0) / (y1 - y0))

    colours = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="11" font-family="sans-serif">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
    ]
    for v, anchor in ((x0, "start"), (x1, "end")):
        out.append(
            f'<text x="{sx(v):.1f}" y="{top + h + 13}" text-anchor="{anchor}">{v:.3g}</text>'
        )
    for v in (y0, y1):
        out.append(f'<text x="{left - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    out.append(
        f'<text x="{left + w / 2:.1f}" y="{height - 4}" text-anchor="middle">{esc(xlabel)}</text>'
    )
    out.append(
        f'<text transform="translate(12 {top + h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(ylabel)}</text>'
    )
    for i, (name, xs, ys) in enumerate(series):
        c = colours[i % len(colours)]
        xy = [(sx(float(x)), sy(float(y)), x, y) for x, y in zip(xs, ys, strict=True)]
        xy = [p for p in xy if not (math.isnan(p[0]) or math.isnan(p[1]))]
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b, _, _ in xy)
        out.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        for a, b, x, y in xy:
            tip = f"{esc(name)}: {float(x):.3g}, {float(y):.3g}"
            out.append(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{c}">'
                f"<title>{tip}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)
