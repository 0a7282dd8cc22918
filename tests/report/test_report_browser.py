"""Every fixture report renders in headless Chromium: plots drawn, no console errors, no requests at all,
injected text shown as text, and a full-page screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.report.chromium import chromium, open_report, png_size, require
from tests.report.conftest import FIXTURES, RUNS

from prompthone.report import RunData, write_report


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for the module (None without chromium: each test then fails with the install hint)."""
    with chromium() as shared:
        yield shared


@pytest.mark.parametrize("name", FIXTURES)
def test_report_renders_offline_in_chromium(name: str, browser: Any, tmp_path: Path) -> None:
    report = write_report(RunData.from_run_dir(RUNS / name), tmp_path / f"{name}.html")
    shot = tmp_path / f"{name}.png"
    with open_report(require(browser), report) as (page, log):
        figures = page.locator(".plotly-graph-div").count()
        assert figures >= 1 and page.locator(".plotly-graph-div .main-svg").count() >= figures
        page.screenshot(path=str(shot), full_page=True)
        assert page.locator("#summary-line").inner_text().startswith(
            {"running": "ape"}.get(name, name) + " on gen:sentiment_templates")
    assert log.errors == [] and log.failed == [] and log.other_requests == [] and log.dialogs == []
    width, height = png_size(shot)
    assert width == 1280 and height > 1500 and shot.stat().st_size > 100_000


def test_hover_shows_injected_prompt_text_as_text(browser: Any, tmp_path: Path) -> None:
    """The lineage tree's hover label of candidate 3 holds '<script>alert(1)</script>' as plain text."""
    report = write_report(RunData.from_run_dir(RUNS / "apo"), tmp_path / "apo.html")
    with open_report(require(browser), report) as (page, log):
        shown = page.evaluate("""() => {
            const gd = document.querySelector('#lineage .plotly-graph-div');
            const nodes = gd.data.findIndex(t => t.mode === 'markers+text');
            Plotly.Fx.hover(gd, [{curveNumber: nodes, pointNumber: 3}]);
            const label = gd.querySelector('.hoverlayer .hovertext');
            return {text: label ? label.textContent : null, scripts: gd.querySelectorAll('.hoverlayer script').length};
        }""")
    assert shown["text"] is not None and "<script>alert(1)</script> Classify the sentiment" in shown["text"]
    assert shown["scripts"] == 0 and log.dialogs == [] and log.errors == []
