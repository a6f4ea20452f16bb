"""The privacy request page, its deletion confirmation and the privacy statement in a real
Chromium at 1366 and 375 px: nothing wider than the window, the buttons on screen.

Screenshots go to MANIREPORTS_SCREENSHOTS (default /tmp/manireports-shots).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.appdb import AppDB
from common.models.analytics import UsertimeSession
from tests.e2e.conftest import moodle_user_id, sign_in

SHOTS = Path(os.environ.get("MANIREPORTS_SCREENSHOTS", "/tmp/manireports-shots"))
WIDTHS = (1366, 375)


@pytest.mark.parametrize("width", WIDTHS)
def test_privacy_pages_fit_the_window(live_server, browser, demo_site, width):  # type: ignore[no-untyped-def]
    root, logins = demo_site
    student = next(login for login in logins if login.role == "student")
    user_id = moodle_user_id(root, student.username)
    appdb = AppDB(f"sqlite:///{root / 'app.db'}")
    when = datetime(2026, 3, 4, tzinfo=UTC)
    with appdb.transaction() as s:
        s.add(UsertimeSession(userid=user_id, courseid=1, cmid=width, sessionstart=when,
                              lastbeat=when, duration=60))  # fmt: skip
    appdb.dispose()
    admin = next(login for login in logins if login.role == "admin")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": 900})
    sign_in(page, live_server, admin)
    for name, path in (
        ("requests", f"/admin/privacy/?user={student.username}"),
        ("delete", f"/admin/privacy/{user_id}/delete"),
        ("statement", "/privacy"),
    ):
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 200, path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
        page.screenshot(path=str(SHOTS / f"privacy-{name}-{width}.png"), full_page=True)
        if name == "requests":
            assert page.locator("text=Export (zip)").is_visible()
            assert page.locator("a.button.danger").is_visible()
        if name == "delete":
            button = page.locator("button.danger")
            box = button.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width
    page.close()
