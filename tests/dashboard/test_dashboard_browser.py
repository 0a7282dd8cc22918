"""The dashboard end to end in headless Chromium: served by uvicorn on 127.0.0.1, clicked through from the runs
list to a run, a candidate and a comparison; a running run's page follows new steps written into the store
without reloading, and stops when the run ends. No console errors, no request leaves 127.0.0.1.

Without /usr/bin/chromium these tests fail with the install hint (`apt-get install -y chromium`), never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.dashboard.conftest import DashStore, add_step, build_store, example_counts, serving, start_running_run
from tests.report.chromium import PLOTS_DRAWN, PageLog, chromium, logged_page, png_size, require

from prompthone.store import RunStore


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashStore, str]]:
    """A store of its own (these tests write runs into it) and the dashboard serving it."""
    store = build_store(tmp_path_factory.mktemp("dashboard-browser"))
    with serving(store.url, refresh_s=0.4) as url:
        yield store, url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as shared:
        yield shared


@contextmanager
def open_page(browser: Any, base: str) -> Iterator[tuple[Any, PageLog]]:
    """A new page whose requests, failures, console errors and dialogs are logged."""
    page, log = logged_page(require(browser), base)
    try:
        yield page, log
    finally:
        page.close()


def check_clean(log: PageLog) -> None:
    """No console error, dialog or failed request, except a live poll of /api/ that Chromium aborted because the
    test clicked away while it was in flight (the page polls every 0.4 s while a run is running)."""
    failed = [f for f in log.failed if not (f.startswith(f"{log.url}api/") and f.endswith(": net::ERR_ABORTED"))]
    assert log.errors == [] and failed == [] and log.dialogs == []
    assert log.requests and [u for u in log.requests if not u.startswith(log.url)] == []


def plots_drawn(page: Any) -> None:
    page.wait_for_selector(".plotly .main-svg", timeout=30_000)
    page.wait_for_function(PLOTS_DRAWN, timeout=30_000)


def test_click_through_runs_run_candidate_and_comparison(live: tuple[DashStore, str], browser: Any,
                                                         tmp_path: Path) -> None:
    store, base = live
    with RunStore(store.url) as db:
        run_ids = [r.id for r in db.list_runs()]
        result = db.get_run(store.gepa).result or {}
        cands = db.candidates(store.gepa)
        best = result["best_candidate_id"]
        keys = sorted({e["key"] for e in db.evaluations(store.gepa, best)})
        counts = {key: example_counts(db, store.gepa, best, key) for key in keys}
    with open_page(browser, base) as (page, log):
        page.goto(base)
        assert page.locator("#runs tbody tr").count() == len(run_ids)
        assert page.locator(f'tr[data-run-id="{store.running}"] .status-running .live-dot').count() == 1
        page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)

        page.click(f'#runs a[href="/runs/{store.gepa}"]')
        page.wait_for_url(f"{base}runs/{store.gepa}")
        plots_drawn(page)
        assert page.locator("h1").inner_text().startswith("GEPA on fake-sentiment")
        assert page.locator("#candidates-table tbody tr").count() == len(cands)
        assert page.locator("body").get_attribute("data-live") == "off"  # a finished run is not followed
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

        page.click(f'#candidates-table tr[data-cand-id="{best}"] td:first-child a')
        page.wait_for_url(f"{base}runs/{store.gepa}/candidates/{best}")
        assert page.locator("h1").inner_text().startswith(f"Candidate #{best}")
        assert page.locator("#instruction").inner_text() == cands[best]["prompt"]["instruction"]
        shown = {}
        for key in keys:
            block = page.locator(f'.comparison[data-key="{key}"]')
            shown[key] = {name: block.locator(f'[data-count="{name}"]').inner_text() for name in ("wins", "losses")}
        expected = {key: {"wins": f"{c['wins']} win{'' if c['wins'] == 1 else 's'}",
                          "losses": f"{c['losses']} loss{'' if c['losses'] == 1 else 'es'}"}
                    for key, c in counts.items()}
        assert shown == expected and any(c["wins"] for c in counts.values())
        page.screenshot(path=str(tmp_path / "candidate.png"), full_page=True)

        parent = cands[best]["parent"]
        page.click(f'#chain a[href="/runs/{store.gepa}/candidates/{parent}"]')
        page.wait_for_url(f"{base}runs/{store.gepa}/candidates/{parent}")
        assert page.locator("#chain .pill.current").inner_text().startswith(f"#{parent}")

        page.goto(base)
        assert page.locator("#compare-button").is_disabled()
        page.check(f'input[value="{store.opro}"]')
        page.check(f'input[value="{store.gepa}"]')
        assert page.locator("#compare-hint").inner_text() == "2 runs selected"
        page.click("#compare-button")
        page.wait_for_url(f"{base}compare?run={store.gepa}&run={store.opro}")
        plots_drawn(page)
        assert page.locator("#compare-table tbody tr").count() == 2
        assert page.evaluate("document.getElementById('compare-plot').data.length") == 2
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    check_clean(log)
    for name in ("runs", "run", "candidate", "compare"):
        width, height = png_size(tmp_path / f"{name}.png")
        assert width == 1280 and height >= 600


def test_a_running_runs_page_follows_new_steps_without_reloading(live: tuple[DashStore, str], browser: Any,
                                                                  tmp_path: Path) -> None:
    store, base = live
    with RunStore(store.url) as db, open_page(browser, base) as (page, log):
        run_id = start_running_run(db, "live-opro")
        page.goto(f"{base}runs/{run_id}")
        plots_drawn(page)
        assert page.locator("body").get_attribute("data-live") == "on"
        assert page.locator("#candidates-table tbody tr").count() == 3
        page.evaluate("window.__sameDocument = true")
        refreshes = int(page.locator("body").get_attribute("data-refreshes") or 0)

        db.record_candidate(run_id, {"id": 3, "parent": 1, "origin": "opro", "step": 2, "scores": {"train": 0.9},
                                     "prompt": {"instruction": "A newer <em>instruction</em>.", "demos": []}})
        add_step(db, run_id, 3, 3, 0.9)
        page.wait_for_selector('#candidates-table tr[data-cand-id="3"]', timeout=15_000)
        page.wait_for_function("() => document.querySelector('[data-field=steps]').textContent === '3'", timeout=15_000)
        assert page.evaluate("window.__sameDocument") is True  # updated in place: no reload
        assert int(page.locator("body").get_attribute("data-refreshes") or 0) > refreshes
        assert page.locator('tr[data-cand-id="3"] .preview').inner_text() == "A newer <em>instruction</em>."
        assert page.locator('tr[data-cand-id="3"] .badge-best').count() == 1
        assert page.locator("[data-field=n_candidates]").inner_text() == "4"
        assert page.locator("[data-field=calls]").inner_text() == "30"
        train = page.evaluate("document.getElementById('scores-plot').data.find(t => t.name === 'train').y")
        assert train == [0.5, 0.75, 0.25, 0.9]
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

        db.finish_run(run_id, "finished", {"method": "opro", "task": "fake-sentiment", "best_candidate_id": 3,
                                           "best_dev_score": 0.8, "seed_dev_score": 0.5, "test_score": 0.7,
                                           "seed_test_score": 0.6, "stopped_reason": "finished", "steps": 3})
        page.wait_for_function("() => document.body.dataset.live === 'off'", timeout=15_000)
        assert page.locator("#run-status").inner_text() == "finished"
        assert page.locator("#run-status .live-dot").count() == 0
        assert page.locator("#live-banner").inner_text().startswith("This run has ended (finished)")
        assert page.locator("span[data-field=best_dev]").inner_text() == "0.800"
        assert page.evaluate("window.__sameDocument") is True
        page.screenshot(path=str(tmp_path / "ended.png"), full_page=True)
    check_clean(log)
    assert not any("/api/runs/live-opro" not in u and "/api/" in u for u in log.requests)


def test_the_runs_page_shows_a_run_ending(live: tuple[DashStore, str], browser: Any) -> None:
    store, base = live
    with RunStore(store.url) as db, open_page(browser, base) as (page, log):
        run_id = start_running_run(db, "ending-opro")
        page.goto(f"{base}?method=opro")
        row = page.locator(f'#runs tr[data-run-id="{run_id}"]')
        assert row.locator(".live-dot").count() == 1
        db.finish_run(run_id, "interrupted", None)
        page.wait_for_function(f"() => document.querySelector('tr[data-run-id=\"{run_id}\"] [data-cell=status]')"
                               ".textContent.trim() === 'interrupted'", timeout=15_000)
        assert row.locator(".live-dot").count() == 0
        if page.locator("#runs .status-running").count() == 0:
            page.wait_for_function("() => document.body.dataset.live === 'off'", timeout=15_000)
    check_clean(log)
