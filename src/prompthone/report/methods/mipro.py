"""MIPRO panel: the candidate demo sets, the dataset summary, the proposed instructions, a map of trial scores
over (instruction, demo set) and every trial and full evaluation in order."""

from __future__ import annotations

import html
from typing import Any

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml, plotly_go
from prompthone.report.methods.base import Panel, events_of
from prompthone.report.summary import score


def mipro_panel(run: RunData, figure_html: FigureHtml) -> Panel:
    trials = events_of(run, "trial")
    demo_sets = next((e.get("sets") or [] for e in events_of(run, "demo_sets")), [])
    instructions = next((e.get("instructions") or [] for e in events_of(run, "instructions")), [])
    summary = next(iter(events_of(run, "dataset_summary")), None)
    heat = trial_map(trials, instructions, len(demo_sets))
    return Panel("MIPRO: instructions × demo sets", "mipro.html.j2", {
        "trials": trials, "full_evals": [e for e in events_of(run, "full_eval") if e.get("candidate") is not None],
        "demo_sets": demo_sets, "instructions": instructions, "summary": summary,
        "figure": figure_html(heat) if heat is not None else None,
        "recorded": bool(trials or demo_sets or instructions)})


def trial_map(trials: list[dict[str, Any]], instructions: list[dict[str, Any]], n_sets: int) -> Any:
    """A heat map of the mean trial score of each (instruction, demo set) pair the search tried."""
    if not trials:
        return None
    go = plotly_go()
    cells: dict[tuple[int, int], list[float]] = {}
    for e in trials:
        params, value = e.get("params") or {}, score(e.get("score"))
        if value is not None and isinstance(params.get("instruction"), int) and isinstance(params.get("demo_set"), int):
            cells.setdefault((params["instruction"], params["demo_set"]), []).append(value)
    if not cells:
        return None
    rows = max(len(instructions), 1 + max(i for i, _ in cells))
    cols = max(n_sets, 1 + max(d for _, d in cells))
    z = [[_mean(cells.get((i, d))) for d in range(cols)] for i in range(rows)]
    text = [[f"{len(cells[(i, d)])}×" if (i, d) in cells else "" for d in range(cols)] for i in range(rows)]
    texts = {int(p.get("index", n)): str(p.get("instruction", "")) for n, p in enumerate(instructions)}
    hover = [[f"instruction {i}, demo set {d}<br>mean {_fmt(z[i][d])} over {text[i][d] or '0×'}<br>"
              f"{html.escape(texts.get(i, '')[:160])}" for d in range(cols)] for i in range(rows)]
    fig = go.Figure(go.Heatmap(z=z, x=[f"set {d}" for d in range(cols)], y=[f"instr. {i}" for i in range(rows)],
                               text=text, texttemplate="%{text}", hovertext=hover, hoverinfo="text",
                               colorscale="Viridis", colorbar={"title": {"text": "mean score"}, "thickness": 12}))
    fig.update_layout(template="plotly_white", height=max(220, 60 + 40 * rows), margin={"l": 70, "r": 20, "t": 20,
                                                                                        "b": 40},
                      yaxis={"autorange": "reversed"}, font={"size": 12})
    return fig


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
