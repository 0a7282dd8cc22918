"""Open a report in headless Chromium (Debian's `chromium` package driven by playwright) and check what it did.

Never `playwright install`: it downloads browsers. CI installs `chromium` with apt-get; without it the browser
tests fail with that hint instead of skipping, so a CI image that lost it cannot pass quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = (f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium` "
                "(and `pip install -e '.[dev]'` for playwright; never `playwright install`)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: every plot has drawn its SVG
PLOTS_DRAWN = ("() => [...document.querySelectorAll('.plotly-graph-div')]"
               ".every(d => d.querySelector('.main-svg') !== null)")


@dataclass
class PageLog:
    """What a page did while it loaded and rendered."""

    url: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def other_requests(self) -> list[str]:
        """Every request but the report file itself (there must be none: no network, no other file)."""
        return [u for u in self.requests if u != self.url]


def missing() -> str | None:
    """Why the browser tests cannot run here (with the install hint), or None."""
    if not Path(CHROMIUM).exists():
        return INSTALL_HINT
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"playwright is missing: pip install -e '.[dev]' ({INSTALL_HINT})"
    return None


def require(browser: Any) -> Any:
    """The browser a fixture launched, or fail the test (never skip) saying what to install."""
    if browser is None:
        pytest.fail(missing() or "no browser was launched")
    return browser


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (None when it or playwright is missing: `require` then fails the test)."""
    if missing() is not None:
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def logged_page(browser: Any, url: str) -> tuple[Any, PageLog]:
    """A new page whose requests, failed requests, console errors, page errors and dialogs go into a PageLog."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = PageLog(url)
    page.on("request", lambda r: log.requests.append(r.url))
    page.on("requestfailed", lambda r: log.failed.append(f"{r.url}: {r.failure}"))
    page.on("console", lambda m: log.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: log.errors.append(f"page error: {e}"))
    page.on("dialog", lambda d: (log.dialogs.append(d.message), d.dismiss()))
    return page, log


@contextmanager
def open_report(browser: Any, report: Path) -> Iterator[tuple[Any, PageLog]]:
    """The report loaded in a new page, every plot drawn; the log of its requests, errors and dialogs."""
    page, log = logged_page(browser, report.resolve().as_uri())
    try:
        page.goto(log.url, wait_until="load")
        page.wait_for_selector(".plotly .main-svg", timeout=30_000)
        page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
        yield page, log
    finally:
        page.close()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file (fails unless it is one)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
