"""GEPA panel: every reflection (parent, component, proposed text, minibatch sums, outcome), every merge attempt
(pair, common ancestor, which side gave each component, check sums, outcome), and the Pareto-set evaluations."""

from __future__ import annotations

from collections import Counter

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml
from prompthone.report.methods.base import Panel, events_of


def gepa_panel(run: RunData, figure_html: FigureHtml) -> Panel:
    reflections = events_of(run, "reflection")
    merges = events_of(run, "merge")
    evaluations = events_of(run, "pareto_eval")
    calls = [e["metric_calls"] for e in run.events if isinstance(e.get("metric_calls"), int)]
    return Panel("GEPA: reflections, merges and Pareto-set evaluations", "gepa.html.j2", {
        "reflections": reflections, "merges": merges, "pareto_evals": evaluations,
        "reflection_outcomes": sorted(Counter(str(e.get("outcome")) for e in reflections).items()),
        "merge_outcomes": sorted(Counter(str(e.get("outcome")) for e in merges).items()),
        "metric_calls": calls[-1] if calls else None,
        "recorded": bool(reflections or merges or evaluations)})
