"""The audit log viewer: people by name, paged and sorted by the database, filters kept while
paging, times in the viewer's zone; only those who may read it can."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from common.access.capabilities import VIEW_AUDIT_LOG
from common.audit import record_audit
from common.models.access import AuditLog, CapabilityGrant
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
    assert rows[0][1:3] == ["mgr_a Manager only theirs", "report_exported"]
    assert rows[1][1:3] == ["Ana Learner only theirs", "signed_in"]
    assert f">{entries.users['ana']}<" not in page  # a name, not the numeric id
    # The name opens the person's page; "only theirs" filters the log to them.
    ana = entries.users["ana"]
    assert f'<a href="/users/{ana}">Ana Learner</a>' in page
    assert f'href="/admin/audit/?to=2020-12-31&amp;user={ana}"' in page
    # The company is named, not numbered; entries about no company leave it blank.
    assert rows[0][5] == "Bolt" and rows[1][5] == ""
    assert {r[5] for r in rows} == {"Bolt", ""}
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


def user_column(html: str) -> set[str]:
    return {r[1].removesuffix(" only theirs") for r in cells(html, "audit-table") if len(r) > 1}


def test_the_user_box_finds_people_by_name_username_or_email(entries, client_as):
    admin = client_as("admin")
    by_name = admin.get(f"/admin/audit/?user=Ana+Learner&{UNTIL}").get_data(as_text=True)
    assert page_range(by_name) == (1, 50, 108)
    assert user_column(by_name) == {"Ana Learner"}
    assert 'id="user-name" class="muted small">Ana Learner (ana)' in by_name
    assert 'value="Ana Learner"' in by_name  # what was typed stays in the box
    for typed in ("mgr_a", "MGR_A@example.com", "  mgr_a   Manager "):
        page = admin.get("/admin/audit/", query_string={"user": typed, "to": "2020-12-31"})
        assert page_range(page.get_data(as_text=True)) == (1, 12, 12), typed
    # Several people match: the entries of them all, and a list to pick one from.
    several = admin.get(f"/admin/audit/?user=Manager&{UNTIL}").get_data(as_text=True)
    assert user_column(several) == {"mgr_a Manager"}
    picks = re.search(r'<nav class="card"[^>]*id="user-matches">.*?</nav>', several, re.S)
    assert picks and "mgr_a Manager" in picks[0] and "mgr_b Manager" in picks[0]
    mgr_a = entries.users["mgr_a"]
    assert f"user={mgr_a}" in picks[0]
    # Nobody: said so, the entries empty, the text kept; wildcards are literal.
    for typed in ("Nobody Atall", "%", "a_z", "a%b", "<script>"):
        page = admin.get("/admin/audit/", query_string={"user": typed}).get_data(as_text=True)
        assert "No one you can see matches" in page, typed
        assert "No entries match." in page, typed
    assert "&lt;script&gt;" in page and "<script>\u201d" not in page


@pytest.mark.parametrize("typed", ["0", "99999999999999999999", "x" * 101])
def test_odd_user_box_input_is_a_400_naming_the_field(entries, client_as, typed):
    response = client_as("admin").get("/admin/audit/", query_string={"user": typed})
    assert response.status_code == 400
    assert "user" in response.get_data(as_text=True)


def test_the_id_in_the_url_still_filters(entries, client_as):
    ana = entries.users["ana"]
    page = client_as("admin").get(f"/admin/audit/?user={ana}&{UNTIL}").get_data(as_text=True)
    assert page_range(page) == (1, 50, 108) and user_column(page) == {"Ana Learner"}
    assert f'value="{ana}"' in page


@pytest.fixture
def acme_auditor(app, entries):  # type: ignore[no-untyped-def]
    """mgr_a, granted the audit log: it reads Acme's entries and Acme's people only."""
    with app.extensions["manireports"].appdb.transaction() as db:
        db.add(CapabilityGrant(userid=entries.users["mgr_a"], capability=VIEW_AUDIT_LOG))
        for who in ("yuri", "ana"):
            company = entries.companies["B" if who == "yuri" else "A"]
            entry = record_audit(db, actor_id=entries.users[who], action="report_viewed",
                                 object_type="report", object_id=who,
                                 company_id=company)  # fmt: skip
            entry.timecreated = STAMP
    return entries


def test_people_outside_the_viewers_scope_cannot_be_found(acme_auditor, client_as):
    site = acme_auditor
    client = client_as("mgr_a")
    mine = client.get(f"/admin/audit/?user=Ana+Learner&{UNTIL}").get_data(as_text=True)
    assert "Ana Learner (ana)" in mine and user_column(mine) == {"Ana Learner"}
    yuri = site.users["yuri"]
    for typed in ("Yuri", "Yuri Learner", "yuri@example.com", "yuri"):
        page = client.get("/admin/audit/", query_string={"user": typed}).get_data(as_text=True)
        assert "No one you can see matches" in page, typed
        assert "(yuri)" not in page and f"/users/{yuri}" not in page, typed
        assert not user_column(page), typed
    by_id = client.get(f"/admin/audit/?user={yuri}&{UNTIL}").get_data(as_text=True)
    assert "no one you can see has this id" in by_id and "Yuri Learner" not in by_id
    assert "No entries match." in by_id
    # Another company asked for: refused as anywhere.
    assert client.get(f"/admin/audit/?user=Yuri&company={site.companies['B']}").status_code == 403
    # A site admin working in Acme does not find Bolt's learner either; on every company, does.
    admin = client_as("admin")
    acme = admin.get(f"/admin/audit/?user=Yuri&company={site.companies['A']}")
    assert "No one you can see matches" in acme.get_data(as_text=True)
    everywhere = admin.get(f"/admin/audit/?user=Yuri&{UNTIL}").get_data(as_text=True)
    assert "Yuri Learner (yuri)" in everywhere and user_column(everywhere) == {"Yuri Learner"}


def test_the_company_column_sorts_by_name_not_id(app, entries, client_as):
    """Company B renamed "Aardvark Ltd" sorts before company A ("Acme…") although its id is
    larger; entries about no company come first ascending, last descending."""
    moodle = entries.moodle
    company = moodle.tables.company
    a, b = entries.companies["A"], entries.companies["B"]
    assert a < b
    with moodle.engine.begin() as conn:
        conn.execute(update(company).where(company.c.id == b).values(name="Aardvark Ltd"))
        a_name = conn.scalar(select(company.c.name).where(company.c.id == a))
    with app.extensions["manireports"].appdb.transaction() as db:
        for i in range(3):
            entry = record_audit(db, actor_id=entries.users["mgr_a"], action="report_exported",
                                 object_type="report", object_id=1000 + i,
                                 company_id=a)  # fmt: skip
            entry.timecreated = STAMP - timedelta(minutes=500 + i)
    admin = client_as("admin")
    named = f"/admin/audit/?{UNTIL}&page_size=500&action=report_exported&sort=company"
    ascending = [r[5] for r in cells(admin.get(named).get_data(as_text=True), "audit-table")]
    assert ascending == ["Aardvark Ltd"] * 12 + [a_name] * 3
    descending = admin.get(f"{named}&dir=desc").get_data(as_text=True)
    assert [r[5] for r in cells(descending, "audit-table")] == [a_name] * 3 + ["Aardvark Ltd"] * 12
    mixed = admin.get(f"/admin/audit/?{UNTIL}&page_size=500&sort=company").get_data(as_text=True)
    column = [r[5] for r in cells(mixed, "audit-table")]
    assert column[:109] == [""] * 109 and column[109:] == ["Aardvark Ltd"] * 12 + [a_name] * 3
    assert admin.get("/admin/audit/?sort=companyid").status_code == 400
