"""What a method-specific panel is: a title, the template that draws it, and the values it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prompthone.report.data import RunData
from prompthone.report.figures import FigureHtml


@dataclass(frozen=True)
class Panel:
    """One section of the report; `template` is a file under `templates/methods/`."""

    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)


#: a method's panel builder: the run and the figure converter (figures must be converted in page order)
PanelBuilder = Callable[[RunData, FigureHtml], Panel]


def events_of(run: RunData, kind: str) -> list[dict[str, Any]]:
    """The run's events of one kind (the `event` field), in order."""
    return [e for e in run.events if e.get("event") == kind]
