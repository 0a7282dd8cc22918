"""`prompthone report`: one self-contained HTML file per optimization run (plots need the `report` extra).

>>> from prompthone.report import RunData, write_report                      # doctest: +SKIP
>>> write_report(RunData.from_run_dir("runs/20261122-101500-apo-sentiment"))  # doctest: +SKIP
PosixPath('runs/20261122-101500-apo-sentiment/report.html')
"""

from __future__ import annotations

from prompthone.report.data import RunData
from prompthone.report.figures import INSTALL_HINT
from prompthone.report.render import render_report, write_report

__all__ = ["INSTALL_HINT", "RunData", "render_report", "write_report"]
