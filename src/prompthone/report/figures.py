"""The report's plots (plotly): score per step and the candidate lineage tree, and the HTML each figure becomes.

plotly is optional (the `report` extra). Text from the run (prompts, example inputs) is HTML-escaped before it
goes into a figure: plotly renders a subset of HTML tags (links included) in hover text.
"""

from __future__ import annotations

import html
import textwrap
from typing import TYPE_CHECKING, Any

from prompthone.errors import ConfigError
from prompthone.report.data import RunData
from prompthone.report.scores import best_so_far, candidate_step, last_step, method_best, score_points
from prompthone.report.summary import parents, score

if TYPE_CHECKING:
    import plotly.graph_objects as go

INSTALL_HINT = "prompthone report needs the report extra: pip install 'prompthone[report]'"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def plotly_go() -> Any:
    """`plotly.graph_objects`, or the one error that says how to install it."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return go


class FigureHtml:
    """Turns figures into `<div>`s in document order: plotly.js is inlined once, with the first figure."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure) -> str:
        self.count += 1
        out: str = fig.to_html(full_html=False, include_plotlyjs=self.count == 1, div_id=f"figure-{self.count}",
                               config={"displaylogo": False, "responsive": True})
        return out


def hover(text: str | None, width: int = 90, limit: int = 700) -> str:
    """Escaped, wrapped text for a hover label."""
    text = (text or "").strip()
    if len(text) > limit:
        text = text[:limit] + " …"
    lines = [line for part in text.splitlines() for line in (textwrap.wrap(part, width) or [""])]
    return "<br>".join(html.escape(line) for line in lines)


def describe(cid: int, cand: dict[str, Any]) -> str:
    """A candidate's hover label: id, origin, step, parents, scores, then its prompt text."""
    prompt = cand.get("prompt") or {}
    ps = parents(cand)
    head = f"<b>#{cid}</b> · {html.escape(str(cand.get('origin', '?')))} · step {candidate_step(cand)}"
    if ps:
        head += " · from " + ", ".join(f"#{p}" for p in ps)
    scores = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in cand.get("scores", {}).items()
                       if score(v) is not None)
    parts = [head, scores or "not scored", "", hover(prompt.get("instruction")) or "<i>(empty instruction)</i>"]
    if prompt.get("system"):
        parts += ["<i>system:</i> " + hover(prompt["system"])]
    if prompt.get("demos"):
        parts += [f"<i>{len(prompt['demos'])} demos</i>"]
    return "<br>".join(parts)


def _layout(fig: go.Figure, height: int, **extra: Any) -> None:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 40, "b": 45},
                      font={"family": FONT, "size": 12}, hoverlabel={"align": "left", "font": {"size": 12}},
                      legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, **extra)


def scores_figure(run: RunData, seed: int | None, best: int | None, rank: str | None) -> go.Figure | None:
    """Each candidate's score per key at the step it was made, best-so-far per key, the method's best per step."""
    go = plotly_go()
    points = score_points(run)
    if not points:
        return None
    fig = go.Figure()
    until = last_step(run)
    # keys side by side within a step, so that equal scores of different keys do not hide each other
    spread = min(0.12, 0.6 / len(points))
    offset = {key: (n - (len(points) - 1) / 2) * spread for n, key in enumerate(points)}
    for n, (key, pts) in enumerate(points.items()):
        color = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=[p.step + offset[key] for p in pts], y=[p.score for p in pts], mode="markers", name=key, legendgroup=key,
            marker={"color": color, "size": 7, "opacity": 0.75},
            hovertext=[describe(p.candidate, run.candidates[p.candidate]) for p in pts], hoverinfo="text"))
        curve = best_so_far(pts, until)
        fig.add_trace(go.Scatter(x=[s for s, _ in curve], y=[v for _, v in curve], mode="lines", line_shape="hv",
                                 name=f"best {key} so far", legendgroup=key, showlegend=False,
                                 line={"color": color, "width": 1.5, "dash": "dot"}, hoverinfo="skip"))
    steps = method_best(run)
    if steps:
        fig.add_trace(go.Scatter(
            x=[s for s, _, _ in steps], y=[v for _, v, _ in steps], mode="lines+markers",
            name=f"method's best ({rank})", line={"color": "#333", "width": 2}, marker={"size": 5},
            hovertext=[f"after step {s}: #{b} {html.escape(str(rank))} {v:.3f}" for s, v, b in steps],
            hoverinfo="text"))
    for cid, label, symbol in ((seed, "seed prompt", "diamond-open"), (best, "best prompt", "star-open")):
        if cid is None or cid not in run.candidates or (label == "best prompt" and best == seed):
            continue
        cand = run.candidates[cid]
        keys = [k for k in points if score(cand.get("scores", {}).get(k)) is not None]
        fig.add_trace(go.Scatter(
            x=[candidate_step(cand) + offset[k] for k in keys], y=[cand["scores"][k] for k in keys], mode="markers",
            name=label, hovertext=[describe(cid, cand)] * len(keys), hoverinfo="text",
            marker={"symbol": symbol, "size": 15, "color": "#000", "line": {"width": 2}}))
    _layout(fig, 430, xaxis_title="step", yaxis_title="score", hovermode="closest")
    first = min(min(p.step for p in pts) for pts in points.values())
    fig.update_xaxes(range=[first - 0.5, until + 0.5], zeroline=False, **({"dtick": 1} if until - first <= 30 else {}))
    return fig


def lineage_positions(run: RunData) -> dict[int, tuple[int, float]]:
    """A layered tree layout: x is the generation (1 + the deepest parent), y spreads each generation,
    children ordered by where their parents are."""
    depth: dict[int, int] = {}

    def generation(cid: int, path: frozenset[int] = frozenset()) -> int:
        if cid not in depth:
            ps = [p for p in parents(run.candidates[cid]) if p in run.candidates and p not in path]
            depth[cid] = 1 + max((generation(p, path | {cid}) for p in ps), default=-1)
        return depth[cid]

    layers: dict[int, list[int]] = {}
    for cid in sorted(run.candidates):
        layers.setdefault(generation(cid), []).append(cid)
    pos: dict[int, tuple[int, float]] = {}
    for d in sorted(layers):
        def anchor(cid: int) -> tuple[float, int]:
            ys = [pos[p][1] for p in parents(run.candidates[cid]) if p in pos]
            return (-sum(ys) / len(ys) if ys else 0.0, cid)

        ordered = sorted(layers[d], key=anchor)
        for i, cid in enumerate(ordered):
            pos[cid] = (d, (len(ordered) - 1) / 2 - i)
    return pos


def _label_colour(values: list[float | None], i: int) -> str:
    """Dark text on the bright (high) end of Viridis and on grey unscored nodes, white on the dark end."""
    scored = [v for v in values if v is not None]
    value = values[i]
    if value is None:
        return "#333"
    low, high = min(scored), max(scored)
    return "#111" if high > low and (value - low) / (high - low) > 0.6 else "#fff"


def lineage_figure(run: RunData, key: str | None, seed: int | None, best: int | None) -> go.Figure | None:
    """The candidate tree (parent → child, merges with a dashed second edge), coloured by `key`."""
    go = plotly_go()
    if not any(parents(c) for c in run.candidates.values()):
        return None
    pos = lineage_positions(run)
    fig = go.Figure()
    for style, which, name in (({"color": "#9aa4b1", "width": 1}, 0, "parent → child"),
                               ({"color": "#ff7f0e", "width": 1.5, "dash": "dash"}, 1, "merge: second parent")):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for cid, cand in run.candidates.items():
            ps = [p for p in parents(cand) if p in pos]
            for p in ps[:1] if which == 0 else ps[1:]:
                xs += [pos[p][0], pos[cid][0], None]
                ys += [pos[p][1], pos[cid][1], None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=style, name=name, hoverinfo="skip"))
    ids = sorted(pos)
    values = [score(run.candidates[c].get("scores", {}).get(key)) if key else None for c in ids]
    for scored in (True, False):
        sel = [i for i, v in enumerate(values) if (v is not None) == scored]
        if not sel:
            continue
        ring = {seed: "#2f5fd0", best: "#d62728"}  # the best's red ring wins when the seed is the best
        marker: dict[str, Any] = {"size": 16, "line": {"width": [3 if ids[i] in ring else 0.5 for i in sel],
                                                       "color": [ring.get(ids[i], "#222") for i in sel]}}
        if scored:
            marker.update(color=[values[i] for i in sel], colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": key}, "thickness": 12})
        else:
            marker.update(color="#d0d4da")
        fig.add_trace(go.Scatter(
            x=[pos[ids[i]][0] for i in sel], y=[pos[ids[i]][1] for i in sel], mode="markers+text",
            text=[str(ids[i]) for i in sel], textposition="middle center",
            textfont={"size": 8, "color": [_label_colour(values, i) for i in sel]}, marker=marker,
            name=f"scored by {key}" if scored else f"no {key} score", hoverinfo="text",
            hovertext=[describe(ids[i], run.candidates[ids[i]]) for i in sel]))
    widest = max(sum(1 for p in pos.values() if p[0] == d) for d in {p[0] for p in pos.values()})
    _layout(fig, max(280, min(900, 70 + 26 * widest)), hovermode="closest",
            xaxis={"title": "generation", "dtick": 1, "zeroline": False},
            yaxis={"visible": False, "zeroline": False})
    return fig
