"""APO (ProTeGi) panel: each textual gradient with the parent it criticised and the edits and paraphrases it led
to, and the beam the bandit kept after each round. APO records no events: all of it is in the candidates."""

from __future__ import annotations

from typing import Any

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml
from prompthone.report.methods.base import Panel
from prompthone.report.summary import score

BANDIT = "bandit"


def apo_panel(run: RunData, figure_html: FigureHtml) -> Panel:
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for cid, cand in sorted(run.candidates.items()):
        gradient = (cand.get("data") or {}).get("gradient")
        if not isinstance(gradient, str) or cand.get("parent") is None:
            continue
        parent = int(cand["parent"])
        group = groups.setdefault((parent, gradient), {
            "parent": parent, "gradient": gradient, "children": [],
            "parent_instruction": (run.candidates.get(parent, {}).get("prompt") or {}).get("instruction", "")})
        group["children"].append({"id": cid, "origin": cand.get("origin", ""),
                                  "instruction": (cand.get("prompt") or {}).get("instruction", ""),
                                  "bandit": score(cand.get("scores", {}).get(BANDIT))})
    beams = [{"step": int(s.get("step", 0)) - 1,
              "members": [{"id": i, "bandit": score(run.candidates.get(i, {}).get("scores", {}).get(BANDIT))}
                          for i in s.get("frontier", [])]}
             for s in run.steps]
    return Panel("APO: textual gradients and the beam", "apo.html.j2",
                 {"gradients": list(groups.values()), "beams": beams})
