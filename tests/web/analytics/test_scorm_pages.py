"""SCORM pages: activities and learners paged and sorted, suspend data and the average attempt
time shown, and the attempt's time elements humanised in the viewer's timezone."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from common.analytics.scorm import update_scorm_summary
from tests.factories.sites import DAY, NOW
from tests.web.analytics.pages import cells, page_range


@pytest.fixture
def packages(app, site):  # type: ignore[no-untyped-def]
    """Acme's Fire Safety holds 'Evacuation drill' (ana: two attempts of 12 min 30 s and 1 h
    7 min 30 s, suspend data; ben: one attempt, 20 min) and 'Alarm codes' (no tracking);
    Bolt's Forklift holds 'Pallet handling' (yuri)."""
    moodle = site.moodle
    drill = moodle.scorm(site.courses["Fire Safety"], name="Evacuation drill")
    moodle.scorm(site.courses["Fire Safety"], name="Alarm codes")
    pallet = moodle.scorm(site.courses["Forklift"], name="Pallet handling")
    ana, ben, yuri = site.users["ana"], site.users["ben"], site.users["yuri"]
    for user, attempt, element, value in (
        (ana, 1, "cmi.core.session_time", "00:12:30"),
        (ana, 1, "x.start.time", str(NOW - 2 * DAY)),
        (ana, 1, "cmi.core.lesson_status", "incomplete"),
        (ana, 2, "cmi.core.session_time", "01:07:30"),
        (ana, 2, "cmi.suspend_data", "page=4"),
        (ana, 2, "cmi.core.lesson_status", "incomplete"),
        (ben, 1, "cmi.core.session_time", "00:20:00"),
        (ben, 1, "cmi.core.lesson_status", "passed"),
        (yuri, 1, "cmi.core.lesson_status", "completed"),
    ):  # fmt: skip
        moodle.scorm_track(user, pallet if user == yuri else drill, element, value, attempt=attempt)
    ctx = app.extensions["manireports"]
    update_scorm_summary(ctx.appdb, ctx.moodle, full=True)
    return {"drill": drill.instance, "pallet": pallet.instance}


def test_activities_show_attempt_time_and_suspend_data_paged_and_sorted(packages, client_as):
    client = client_as("mgr_a")
    page = client.get("/analytics/scorm").get_data(as_text=True)
    rows = cells(page, "activity-table")
    # Activity, course, learners, completed, passed, average best, average attempt time,
    # learners with suspend data. Ana averages 40 min an attempt, Ben 20: 30 min.
    assert ["Evacuation drill", "Fire Safety", "2", "1", "1", "–", "30 min", "1"] in rows
    assert ["Alarm codes", "Fire Safety", "0", "0", "0", "–", "–", "0"] in rows
    assert "Pallet handling" not in page
    by_name = client.get("/analytics/scorm?sort=name&dir=desc&page_size=1").get_data(as_text=True)
    assert [r[0] for r in cells(by_name, "activity-table")] == ["Evacuation drill"]
    assert page_range(by_name) == (1, 1, 2)
    second = client.get("/analytics/scorm?sort=name&dir=desc&page_size=1&page=2")
    assert [r[0] for r in cells(second.get_data(as_text=True), "activity-table")] == ["Alarm codes"]
    assert client.get("/analytics/scorm?sort=bogus").status_code == 400


def test_learners_of_an_activity_are_paged_and_show_their_times(packages, client_as):
    client = client_as("mgr_a")
    base = f"/analytics/scorm/{packages['drill']}"
    rows = cells(client.get(base + "?sort=total_time_s&dir=desc").get_data(as_text=True),
                 "learner-table")  # fmt: skip
    assert [r[:8] for r in rows] == [
        ["Ana Learner", "incomplete", "unknown", "–", "0", "1 h 20 min", "40 min", "yes"],
        ["Ben Learner", "completed", "passed", "–", "0", "20 min", "20 min", "no"],
    ]
    one = client.get(base + "?sort=total_time_s&dir=asc&page_size=1&page=2").get_data(as_text=True)
    assert [r[0] for r in cells(one, "learner-table")] == ["Ana Learner"]
    assert page_range(one) == (2, 2, 2)
    # Another company's activity, sorted or not: refused.
    assert client.get(f"/analytics/scorm/{packages['pallet']}?sort=total_time_s").status_code == 403


def test_an_attempt_shows_its_times_readably_in_the_viewers_zone(packages, site, client_as):
    users = site.moodle.tables.user
    with site.moodle.engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == site.users["mgr_a"])
                     .values(timezone="America/New_York"))  # fmt: skip
    client = client_as("mgr_a")
    url = f"/analytics/scorm/{packages['drill']}/learner/{site.users['ana']}/attempt/1"
    page = client.get(url).get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "cmi.core.session_time 12 min (00:12:30)" in text
    started = datetime.fromtimestamp(NOW - 2 * DAY, UTC).astimezone(ZoneInfo("America/New_York"))
    exact = f"{started.day} {started:%b %Y, %H:%M} EST"
    assert f'title="{exact}">2 days ago</time>' in page
    assert f"{exact}; stored {NOW - 2 * DAY}" in page
    # The learner's figures: two attempts, 1 h 20 min in all, 40 min each, can resume.
    flat = re.sub(r">\s+<", "><", page)
    for value, label in (("2", "Attempts"), ("1 h 20 min", "Total time"),
                         ("40 min", "Average attempt time"), ("yes", "Suspend data")):  # fmt: skip
        assert re.search(rf'class="kpi-value">(<span[^>]*>)?{value}(</span>)?</span>'
                         rf'<span class="kpi-label">{label}', flat), label  # fmt: skip
