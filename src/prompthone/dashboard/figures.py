"""The dashboard's plots as plotly JSON (`{"data", "layout"}`), drawn in the page by the plotly.js we serve.

The run page's plot is the report's score-per-step figure (`report.figures.scores_figure`); the comparison
plot puts several runs' best-so-far curves on one chart. Hover text from a run is HTML-escaped (plotly renders
some tags in it).
"""

from __future__ import annotations

import html
import json
from typing import Any

from prompthone.report.data import RunData
from prompthone.report.figures import FONT, PALETTE, plotly_go, scores_figure


def figure_json(fig: Any) -> dict[str, Any]:
    """A figure as plain JSON data (plotly's encoder: NaN becomes null)."""
    data: dict[str, Any] = json.loads(fig.to_json())
    return data


def run_figure(run: RunData, info: dict[str, Any]) -> dict[str, Any] | None:
    """Each candidate's score per key at its step, best-so-far per key and the method's best (None: nothing scored)."""
    fig = scores_figure(run, info["seed_id"], info["best"].id, info["rank_key"])
    if fig is None:
        return None
    fig.update_layout(height=400, uirevision="keep")  # a refresh keeps the user's zoom and hidden traces
    return figure_json(fig)


def compare_figure(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Best-so-far per run against steps completed, with a button to put model calls on the x axis instead.

    Each of `runs` has `label`, `id`, `method`, `rank_key` and `curve`: [{step, calls, best}] (best so far).
    """
    go = plotly_go()
    drawn = [r for r in runs if r["curve"]]
    if not drawn:
        return None
    fig = go.Figure()
    for n, r in enumerate(runs):
        if not r["curve"]:
            continue
        curve = r["curve"]
        fig.add_trace(go.Scatter(
            x=[p["step"] for p in curve], y=[p["best"] for p in curve], mode="lines+markers", line_shape="hv",
            name=f"{r['label']} {r['method']} ({r['rank_key'] or 'score'})",
            line={"color": PALETTE[n % len(PALETTE)], "width": 2}, marker={"size": 6},
            hovertext=[f"<b>{html.escape(r['label'])}</b> {html.escape(r['id'])}<br>after step {p['step']} "
                       f"({p['calls'] if p['calls'] is not None else '?'} calls): best "
                       f"{html.escape(str(r['rank_key'] or 'score'))} {p['best']:.3f}" for p in curve],
            hoverinfo="text"))
    by_step = [[p["step"] for p in r["curve"]] for r in drawn]
    by_calls = [[p["calls"] for p in r["curve"]] for r in drawn]
    fig.update_layout(
        template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 50, "b": 45},
        font={"family": FONT, "size": 12}, hoverlabel={"align": "left"}, hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"},
        xaxis_title="steps completed", yaxis_title="best so far (ranking score)",
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.12,
                      "yanchor": "bottom", "showactive": True, "buttons": [
                          {"label": "x: steps", "method": "update",
                           "args": [{"x": by_step}, {"xaxis.title.text": "steps completed"}]},
                          {"label": "x: calls", "method": "update",
                           "args": [{"x": by_calls}, {"xaxis.title.text": "model calls (search)"}]}]}])
    return figure_json(fig)
