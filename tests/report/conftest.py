"""Hand-written run directories, one per method shape (tests/report/runs/<name>), and their rendered reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from prompthone.report import RunData, write_report

RUNS = Path(__file__).parent / "runs"
FIXTURES = ("apo", "gepa", "greater", "mipro", "running")


@pytest.fixture
def run_data() -> Callable[[str], RunData]:
    return lambda name: RunData.from_run_dir(RUNS / name)


@pytest.fixture(scope="session")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """The report of a fixture run as text, written once per session (each file inlines 4.8 MB of plotly.js)."""
    root = tmp_path_factory.mktemp("reports")
    pages: dict[str, str] = {}

    def render(name: str) -> str:
        if name not in pages:
            out = write_report(RunData.from_run_dir(RUNS / name), root / f"{name}.html")
            pages[name] = out.read_text(encoding="utf-8")
        return pages[name]
    return render
