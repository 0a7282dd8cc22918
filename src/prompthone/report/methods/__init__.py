"""Method-specific panels, one module per method; a method without one (or an unknown method) has no panel."""

from __future__ import annotations

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml
from prompthone.report.methods.apo import apo_panel
from prompthone.report.methods.base import Panel, PanelBuilder
from prompthone.report.methods.gepa import gepa_panel
from prompthone.report.methods.greater import greater_panel
from prompthone.report.methods.mipro import mipro_panel

#: APE and OPRO record no events: their candidates and scores are in the general sections
PANELS: dict[str, PanelBuilder] = {"apo": apo_panel, "gepa": gepa_panel, "greater": greater_panel,
                                   "mipro": mipro_panel}


def method_panel(run: RunData, method: str, figure_html: FigureHtml) -> Panel | None:
    builder = PANELS.get(method)
    return builder(run, figure_html) if builder is not None else None


__all__ = ["PANELS", "Panel", "method_panel"]
