"""Interactive (plotly) versions of report.html's main figures, for ``memcomp report --plots
interactive`` (the optional ``interactive`` extra; static SVG stays the default).

The charts are drawn from the tidy data the static figures drew (:func:`plot_memory` and
:func:`plot_val_vs_time` in :mod:`memcomp.report.plots`, kept in ``Report.figure_data``), so both
show the same numbers. plotly is imported here only, and only when a chart is asked for; the page
inlines plotly.js once, with its first chart, so it opens offline and fetches nothing.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from memcomp.report.htmlkit import esc
from memcomp.report.plots import learner_order

__all__ = ["PLOTLY_HINT", "Charts", "memory_figure", "plotly_missing", "val_vs_time_figure"]

PLOTLY_HINT = (
    "--plots interactive needs plotly: pip install 'memcomp[interactive]' (or pip install plotly)"
)
CONFIG = {"displaylogo": False, "responsive": True}
PANEL_HEIGHT = 380  # px per row of panels
DASHES = ("solid", "dash", "dot", "dashdot")


def plotly_missing() -> str | None:
    """Why interactive plots cannot be drawn here (None when plotly imports)."""
    try:
        import plotly.graph_objects  # noqa: F401
        import plotly.io  # noqa: F401
        import plotly.subplots  # noqa: F401
    except ImportError:
        return PLOTLY_HINT
    return None


def _colours(learners: list[str]) -> dict[str, str]:
    """Learner -> colour: plotly's D3 palette (matplotlib's tab10) in the static figures' order."""
    from plotly.colors import qualitative

    return {n: _palette(qualitative.D3, i) for i, n in enumerate(learner_order(learners))}


def _palette(colours: list[str], i: int) -> str:
    return colours[i % len(colours)]


def _panels(settings: list[str], title: str) -> Any:
    """A plotly figure with one panel per setting, two per row (as the static figures)."""
    from plotly.subplots import make_subplots

    cols = min(max(len(settings), 1), 2)
    rows = max(1, math.ceil(len(settings) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=settings or None)
    fig.update_layout(
        title=title,
        template="simple_white",
        height=PANEL_HEIGHT * rows + 90,
        hoverlabel={"align": "left"},
        legend={"font": {"size": 11}},
    )
    return fig


def _cell(i: int, n: int) -> dict[str, int]:
    cols = min(max(n, 1), 2)
    return {"row": i // cols + 1, "col": i % cols + 1}


def memory_figure(bars: pd.DataFrame) -> Any:
    """Grouped bars of peak memory (MB) versus K, one panel per setting, from
    :func:`plot_memory`'s tidy data: one trace per (source, series), the same heights; OOM cells
    are hatched placeholder bars; hover gives variant, learner, source, K and MB (or the status)."""
    import plotly.graph_objects as go

    settings = list(dict.fromkeys(bars["setting"]))
    fig = _panels(settings, "Peak memory vs inner-loop steps K (memcomp: peak above baseline)")
    colour = _colours(list(bars["learner"]))
    shown: set[tuple[str, str]] = set()
    for i, setting in enumerate(settings):
        b = bars[bars["setting"] == setting]
        for (source, series), t in b.groupby(["source", "series"], sort=False):
            c = colour[str(t["learner"].iloc[0])]
            oom = [bool(o) for o in t["oom"]]
            mb = [
                str(s).upper() if o else f"{float(h):.1f} MB"
                for o, h, s in zip(oom, t["height"], t["status"], strict=True)
            ]
            key = (str(source), str(series))
            trace = go.Bar(
                x=[f"K={int(k)}" for k in t["K"]],
                y=[float(v) for v in t["drawn_height"]],
                name=str(series),  # paper series are named "paper MAML" etc.
                legendgroup=f"{source}:{series}",
                showlegend=key not in shown,
                marker={
                    "color": ["rgba(0,0,0,0)" if o else c for o in oom],
                    "line": {"color": c, "width": 1},
                    "pattern": {"shape": ["/" if o else "" for o in oom], "fgcolor": c},
                },
                opacity=0.4 if source == "paper" else 1.0,
                text=["OOM" if o else "" for o in oom],
                textposition="outside",
                customdata=[
                    [str(series), str(t["learner"].iloc[0]), str(source), int(k), m]
                    for k, m in zip(t["K"], mb, strict=True)
                ],
                hovertemplate=(
                    "<b>%{customdata[0]}</b><br>learner %{customdata[1]}"
                    " (%{customdata[2]})<br>K = %{customdata[3]}<br>%{customdata[4]}<extra></extra>"
                ),
            )
            shown.add(key)
            fig.add_trace(trace, **_cell(i, len(settings)))
        ks = sorted({int(k) for k in b["K"]})
        fig.update_xaxes(
            categoryorder="array",
            categoryarray=[f"K={k}" for k in ks],
            title_text="inner-loop steps K",
            **_cell(i, len(settings)),
        )
        fig.update_yaxes(title_text="peak memory (MB)", **_cell(i, len(settings)))
    fig.update_layout(barmode="group")
    return fig


def val_vs_time_figure(curves: pd.DataFrame, styles: dict[str, tuple[str, int, int]]) -> Any:
    """Validation accuracy versus training wall-clock, one line per variant and one panel per
    setting, from :func:`plot_val_vs_time`'s tidy data (seed means per evaluation); ``styles``:
    :func:`variant_styles` of the runs (learner, colour and dash as in the static figure). Hover
    gives variant, learner, iteration, seconds, accuracy and the number of seeds averaged."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    settings = list(dict.fromkeys(curves["setting"]))
    fig = _panels(settings, "Validation accuracy vs training wall-clock")
    style = {str(v): styles.get(str(v), (str(v), 0, 0)) for v in curves["variant"]}
    names = {v: learner for v, (learner, _, _) in style.items()}
    colour = {v: _palette(qualitative.D3, c) for v, (_, c, _) in style.items()}
    dash = {v: DASHES[d % len(DASHES)] for v, (_, _, d) in style.items()}
    shown: set[str] = set()
    for i, setting in enumerate(settings):
        a = curves[curves["setting"] == setting]
        for key, c in a.groupby("variant", sort=False):
            v = str(key)
            trace = go.Scatter(
                x=[float(s) for s in c["train_seconds"]],
                y=[float(s) for s in c["val_acc"]],
                mode="lines+markers",
                name=v,
                legendgroup=v,
                showlegend=v not in shown,
                line={"color": colour[v], "dash": dash[v]},
                customdata=[
                    [v, names[v], int(it), int(n)]
                    for it, n in zip(c["iteration"], c["n_seeds"], strict=True)
                ],
                hovertemplate=(
                    "<b>%{customdata[0]}</b><br>learner %{customdata[1]}<br>"
                    "iteration %{customdata[2]}<br>%{x:.3g} s<br>val acc %{y:.2f}%<br>"
                    "mean of %{customdata[3]} seed(s)<extra></extra>"
                ),
            )
            shown.add(v)
            fig.add_trace(trace, **_cell(i, len(settings)))
        fig.update_xaxes(title_text="training wall-clock (s)", **_cell(i, len(settings)))
        fig.update_yaxes(title_text="validation accuracy (%)", **_cell(i, len(settings)))
    return fig


class Charts:
    """The plotly charts of one page, in page order: plotly.js goes inline with the first only."""

    def __init__(self) -> None:
        self.count = 0

    def block(self, fig: Any, plot_id: str, caption: str = "") -> str:
        """``fig`` as a ``<figure class="mc-plotly">`` block (div and script, no file, no URL)."""
        import plotly.io as pio

        html = pio.to_html(
            fig,
            include_plotlyjs=self.count == 0,
            full_html=False,
            div_id=f"{plot_id}-chart",
            config=CONFIG,
            default_height=f"{int(fig.layout.height or PANEL_HEIGHT)}px",
        )
        self.count += 1
        cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        return (
            f'<figure class="mc-plotly" id="{esc(plot_id)}" style="margin:8px 0">'
            f"{html}{cap}</figure>"
        )
