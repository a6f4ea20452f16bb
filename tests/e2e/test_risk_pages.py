"""The at-risk list and a flagged learner's own page after a real pre-aggregation of the demo
site, in a real Chromium at 1366 and 375 px, as each role that sees them: learners, courses and
factors by name (the labels are added as the page reads the stored factors), nothing wider
than the window.

Screenshots go to MANIREPORTS_SCREENSHOTS (default /tmp/manireports-shots).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from common.appdb import AppDB
from common.moodle import MoodleSource
from services.aggregator.jobs import Jobs
from tests.e2e.test_drilldown import login
from tests.support import make_settings

SHOTS = Path(os.environ.get("MANIREPORTS_SCREENSHOTS", "/tmp/manireports-shots"))
WIDTHS = (1366, 375)
ROLES = ("admin", "companymanager", "teacher")


@pytest.fixture(scope="module")
def scored(live_server, demo_site):  # type: ignore[no-untyped-def]
    """The live server's site after one whole pre-aggregation (the migrated app DB is the
    live server's: it is created first)."""
    root, logins = demo_site
    settings = make_settings(root, MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}")
    appdb, source = AppDB(settings.database_url), MoodleSource(settings.moodle_database_url)
    try:
        Jobs(settings, appdb, source).preaggregate()
    finally:
        appdb.dispose()
        source.dispose()
    return live_server, logins


def overflow(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ROLES)
def test_at_risk_list_and_a_flagged_learners_page(browser, scored, role, width):  # type: ignore[no-untyped-def]
    base, logins = scored
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        login(page, base, role, logins)
        response = page.goto(f"{base}/analytics/at-risk")
        assert response is not None and response.status == 200
        assert overflow(page) <= 0, f"the at-risk list at {width}px scrolls sideways"
        page.screenshot(path=str(SHOTS / f"at-risk-{role}-{width}.png"), full_page=True)

        rows = page.locator("#at-risk-table tbody tr")
        assert rows.count() > 1, "the demo site flags learners in every role's view"
        first = rows.first
        learner = first.locator("td").nth(0).inner_text().strip()
        course = first.locator("td").nth(1).inner_text().strip()
        assert learner and not re.fullmatch(r"(user|learner)? ?#?\d+", learner, re.I), learner
        assert course and not re.fullmatch(r"(course)? ?#?\d+", course, re.I), course
        factors = first.locator(".factors li").all_inner_texts()
        assert factors and all(re.match(r"[A-Z][^:]+: ", f) for f in factors), factors
        # Every cell of a row is on screen, on a phone too (the rows stack), and so are
        # the sort links.
        for cell in first.locator("td").all():
            box = cell.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width + 1, cell.inner_text()
        assert page.locator("#at-risk-table thead a.sort").first.is_visible()

        # The learner's page and the course's: each lists at-risk scores the same way.
        for column, path, title, name in ((0, "users", learner, "learner"),
                                          (1, "courses", course, "course")):  # fmt: skip
            page.goto(f"{base}/analytics/at-risk")
            rows.first.locator("td").nth(column).locator("a").click()
            page.wait_for_load_state()
            assert re.search(rf"/{path}/\d+$", page.url), page.url
            assert title in page.locator("h1").inner_text()
            risk = page.locator("section[aria-labelledby=section-risk]")
            why = risk.locator(".factors li").all_inner_texts()
            assert why and all(re.match(r"[A-Z][^:_]+: ", f) for f in why), why  # not keys
            assert overflow(page) <= 0, f"the {name}'s page at {width}px scrolls sideways"
            page.screenshot(path=str(SHOTS / f"{name}-{role}-{width}.png"), full_page=True)
    finally:
        context.close()
