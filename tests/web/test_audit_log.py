"""The audit log viewer: people by name, paged and sorted by the database, filters kept while
paging, times in the viewer's zone; only those who may read it can."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from common.audit import record_audit
from common.models.access import AuditLog
from tests.web.analytics.pages import cells, page_range, titles

STAMP = datetime(2020, 6, 1, 11, 0, tzinfo=UTC)
# Signing in is audited too (at the real time): the tests look at 2020 and before.
UNTIL = "to=2020-12-31"


@pytest.fixture
def entries(app, site):  # type: ignore[no-untyped-def]
    """120 entries: ana's logins (one a minute, newest first in time), and every tenth an
    export by mgr_a about company B."""
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        for i in range(120):
            export = i % 10 == 0
            entry = record_audit(db, actor_id=site.users["mgr_a" if export else "ana"],
                                 action="report_exported" if export else "signed_in",
                                 object_type="report" if export else "session", object_id=i,
                                 company_id=site.companies["B"] if export else None)  # fmt: skip
            entry.timecreated = STAMP - timedelta(minutes=i)
        db.add(AuditLog(userid=None, action="cleanup", object_type="task", outcome="success",
                        timecreated=STAMP - timedelta(days=400)))  # fmt: skip
    return site


def test_entries_name_people_and_page(entries, client_as):
    admin = client_as("admin")
    page = admin.get(f"/admin/audit/?{UNTIL}").get_data(as_text=True)
    assert page_range(page) == (1, 50, 121)
    rows = cells(page, "audit-table")
    assert rows[0][1:3] == ["mgr_a Manager", "report_exported"]
    assert rows[1][1:3] == ["Ana Learner", "signed_in"]
    assert f">{entries.users['ana']}<" not in page  # a name, not the numeric id
    last = admin.get(f"/admin/audit/?{UNTIL}&page=3").get_data(as_text=True)
    assert page_range(last) == (101, 121, 121)
    assert cells(last, "audit-table")[-1][1:3] == ["–", "cleanup"]
    ordered = admin.get(f"/admin/audit/?{UNTIL}&sort=action&page_size=13").get_data(as_text=True)
    assert [r[2] for r in cells(ordered, "audit-table")] == ["cleanup"] + ["report_exported"] * 12
    assert admin.get("/admin/audit/?sort=details").status_code == 400
    assert admin.get("/admin/audit/?page=0").status_code == 400


def test_filters_survive_paging_and_name_the_chosen_user(entries, client_as):
    admin = client_as("admin")
    ana = entries.users["ana"]
    page = admin.get(f"/admin/audit/?user={ana}&page_size=100&{UNTIL}").get_data(as_text=True)
    assert page_range(page) == (1, 100, 108)
    assert 'id="user-name" class="muted small">Ana Learner' in page
    next_link = f"user={ana}&amp;page_size=100&amp;to=2020-12-31&amp;page=2"
    assert next_link in page
    assert page_range(admin.get(f"/admin/audit/?user={ana}&page_size=100&{UNTIL}&page=2")
                      .get_data(as_text=True)) == (101, 108, 108)  # fmt: skip
    dated = admin.get("/admin/audit/?from=2019-01-01&to=2019-12-31").get_data(as_text=True)
    assert [r[2] for r in cells(dated, "audit-table")] == ["cleanup"]
    assert admin.get("/admin/audit/?from=yesterday").status_code == 400


def test_times_read_in_the_viewers_zone(entries, client_as):
    moodle = entries.moodle
    users = moodle.tables.user
    with moodle.engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == moodle.ADMIN_ID)
                     .values(timezone="Australia/Sydney"))  # fmt: skip
    page = client_as("admin").get(f"/admin/audit/?{UNTIL}").get_data(as_text=True)
    local = STAMP.astimezone(ZoneInfo("Australia/Sydney"))
    assert local.tzname() == "AEST"
    assert f"{local.day} {local:%b %Y, %H:%M} AEST" in titles(page, "audit-table")[0][0]


def test_only_those_who_may_read_the_log_can(entries, client_as):
    for who in ("mgr_a", "mgr_b", "teacher_a", "ana"):
        assert client_as(who).get("/admin/audit/?page=2&sort=action").status_code == 403
