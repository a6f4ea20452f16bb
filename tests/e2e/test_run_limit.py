"""In a real browser: a report page waiting for a free slot shows its place and loads by
itself once a slot frees; the run history page at desktop and phone widths."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from waitress.server import create_server

from common.migrate import upgrade
from common.nats_server import free_port
from common.run_limit import LocalRunLimiter
from tests.e2e.test_drilldown import login
from tests.support import make_settings, wait_for
from web.app import create_app
from web.runs.execution import EXTENSION

SHOTS = (
    Path(os.environ.get("MANIREPORTS_SCREENSHOTS", ""))
    if os.environ.get("MANIREPORTS_SCREENSHOTS")
    else None
)


@pytest.fixture(scope="module")
def served(demo_site, nats_server):  # type: ignore[no-untyped-def]
    root, _ = demo_site
    settings = make_settings(root, MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}",
                             NATS_URL=nats_server.url)  # fmt: skip
    upgrade(settings.database_url)
    app = create_app(settings)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{port}", app
    server.close()


def test_a_waiting_report_shows_its_place_and_loads_by_itself(served, demo_site, browser):
    base, app = served
    limiter = LocalRunLimiter(1, "test")
    app.extensions[EXTENSION] = limiter
    hold = limiter.acquire()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        login(page, base, "admin", demo_site[1])
        page.goto(f"{base}/reports/course_completion")
        loading = page.locator("#loading")
        # The page's CSP allows no eval: poll from here.
        wait_for(lambda: "Waiting for a free slot" in (loading.text_content() or ""), 10,
                 message="the waiting message")  # fmt: skip
        assert "you are next" in loading.text_content()
        assert loading.is_visible()
        assert page.locator("#report-view").get_attribute("aria-busy") == "true"
        if SHOTS:
            page.screenshot(path=str(SHOTS / "report-waiting-1366.png"))
        hold.release()  # no click: the page asks again by itself
        page.wait_for_selector("#report-view[data-loaded]", timeout=10_000)
        assert page.locator("#report-table tbody tr").count() > 0
        assert loading.text_content() == "Loading…"
        assert page.locator("#view-error").is_hidden()
    finally:
        page.close()


@pytest.mark.parametrize("width", [1366, 375])
def test_the_run_history_page_fits_the_screen(served, demo_site, browser, width):
    base, _ = served
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        login(page, base, "admin", demo_site[1])
        page.goto(f"{base}/reports/course_completion")
        page.wait_for_selector("#report-view[data-loaded]", timeout=10_000)
        page.goto(f"{base}/runs/")
        assert page.locator("#runs-table tbody tr.run-ok").count() >= 1
        assert "Course completion" in page.locator("#runs-table").inner_text()
        # Nothing wider than the screen but the table, which scrolls in its own box.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        if SHOTS:
            page.screenshot(path=str(SHOTS / f"runs-{width}.png"), full_page=True)
    finally:
        page.close()
