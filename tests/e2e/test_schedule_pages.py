"""A report schedule's pages in a real Chromium at 1366 and 375 px, as the site admin: the list
with a failed run's error, the form with its Runs card and "Run now" (which queues a run and
says so), and an invalid download link. Nothing wider than the window.

Screenshots go to MANIREPORTS_SCREENSHOTS (default /tmp/manireports-shots).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.appdb import AppDB
from common.models.schedules import ReportSchedule
from tests.e2e.conftest import moodle_user_id, sign_in

SHOTS = Path(os.environ.get("MANIREPORTS_SCREENSHOTS", "/tmp/manireports-shots"))
WIDTHS = (1366, 375)


def failed_schedule(root: Path, admin_id: int, width: int) -> int:
    appdb = AppDB(f"sqlite:///{root / 'app.db'}")
    try:
        with appdb.transaction() as s:
            row = ReportSchedule(
                title=f"Weekly completions for the board ({width})", report="course_completion",
                frequency="weekly", at="09:00", weekdays="mon", tz="Europe/London",
                format="xlsx", createdby=admin_id, active=True,
                recipients_json=json.dumps({"users": [], "emails": ["board@example.com"]}),
                next_run_at=datetime(2030, 1, 7, 9, tzinfo=UTC),
                last_run_at=datetime(2026, 11, 30, 9, 0, 12, tzinfo=UTC), last_status="failed",
                attempts=4, failed_error="OperationalError: (1146) Table 'moodle.mdl_quiz' "
                "doesn't exist",
            )  # fmt: skip
            s.add(row)
            s.flush()
            return int(row.id)
    finally:
        appdb.dispose()


@pytest.mark.parametrize("width", WIDTHS)
def test_schedule_pages_fit_and_run_now_queues(live_server, browser, demo_site, width):  # type: ignore[no-untyped-def]
    root, logins = demo_site
    admin = next(login for login in logins if login.role == "admin")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": 900})
    sign_in(page, live_server, admin)
    admin_id = moodle_user_id(root, admin.username)
    schedule_id = failed_schedule(root, admin_id, width)

    def visit(name: str, path: str, status: int = 200) -> None:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == status, path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
        page.screenshot(path=str(SHOTS / f"schedules-{name}-{width}.png"), full_page=True)

    visit("list", "/schedules/")
    assert page.locator("text=doesn't exist").first.is_visible()
    visit("edit", f"/schedules/{schedule_id}")
    runs = page.locator("#schedule-runs")
    assert "failed" in runs.inner_text() and "4 attempts" in runs.inner_text()
    page.click("#run-now")
    page.wait_for_load_state()
    assert "Queued" in page.locator("body").inner_text()
    page.screenshot(path=str(SHOTS / f"schedules-queued-{width}.png"), full_page=True)
    visit("bad-link", "/schedules/files/" + "x" * 43, status=404)
    assert "not valid" in page.locator("h1").inner_text()
    page.close()
