"""GREATER panel: per step, the position optimized, the candidate tokens with their gradients, the shortlist's
measured losses, the token chosen and why; and per position, the tokens it held over the visits."""

from __future__ import annotations

from typing import Any

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml
from prompthone.report.methods.base import Panel


def greater_panel(run: RunData, figure_html: FigureHtml) -> Panel:
    steps = [e for e in run.events if "position" in e and "candidates" in e]
    rows = []
    positions: dict[int, list[dict[str, Any]]] = {}
    for e in steps:
        shortlisted = {s.get("token") for s in e.get("shortlist") or []}
        best_gradient = min((c.get("gradient", 0.0) for c in e["candidates"]), default=0.0)
        candidates = [{**c, "chosen": c.get("token") == e.get("chosen"), "shortlisted": c.get("token") in shortlisted,
                       "current": not e.get("placeholder") and c.get("token") == e.get("current_token"),
                       "strength": (c.get("gradient", 0.0) / best_gradient) if best_gradient < 0 else 0.0}
                      for c in e["candidates"]]
        rows.append({**e, "candidates": candidates})
        positions.setdefault(int(e["position"]), []).append(
            {"step": e.get("step"), "token": e.get("chosen"), "changed": bool(e.get("changed")),
             "grew": bool(e.get("placeholder"))})
    final = next((e["prompt"] for e in reversed(steps) if isinstance(e.get("prompt"), str)), None)
    return Panel("GREATER: token choices per position", "greater.html.j2",
                 {"steps": rows, "positions": sorted(positions.items()), "final_prompt": final,
                  "changed": sum(1 for e in steps if e.get("changed"))})
