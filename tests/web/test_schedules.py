"""The report schedules pages on the two-company site: create, edit and delete through the
form (CSRF on every POST, the capability on every route), errors beside their fields with the
input kept, the next five runs as `next_runs` works them out in both zones, recipients only
within the author's scope, and another company's schedule a 404 on every route and method."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.models.schedules import ReportSchedule
from common.schedules import next_runs, parse_recurrence
from common.schedules.store import Author, ScheduleInput, save_schedule
from common.tenancy import VIEW, scope_for
from tests.factories.sites import NOW
from tests.web.conftest import csrf_token
from web.humanize import exact_text

FORM = {"title": "Weekly completions", "report": "course_completion", "filter_days": "90",
        "frequency": "weekly", "at": "09:00", "weekdays": ["mon", "thu"],
        "tz": "Europe/London", "emails": "boss@acme.example", "format": "xlsx", "active": "1",
        "action": "save"}  # fmt: skip


def schedules(app) -> list[ReportSchedule]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        found = list(db.scalars(select(ReportSchedule).order_by(ReportSchedule.id)))
        db.expunge_all()
    return found


def audit_actions(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        return [str(a) for a in db.scalars(select(AuditLog.action).order_by(AuditLog.id))]


def post(client, path: str, **changes):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/schedules/new")
    return client.post(path, data={**FORM, "csrf_token": token, **changes})


def bolt_schedule(app, site) -> ReportSchedule:  # type: ignore[no-untyped-def]
    """A schedule of Bolt's manager, saved through the store."""
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        from common.access.viewer import load_viewer

        manager = load_viewer(ctx.moodle, db, site.users["mgr_b"])
    assert manager is not None
    data = ScheduleInput(
        title="Forklift weekly",
        report="course_completion",
        frequency="daily",
        at="07:00",
        tz="UTC",
        emails="pallet@bolt.example",
        format="csv",
    )
    author = Author(manager, scope_for(manager, None, VIEW))
    return save_schedule(ctx.appdb, ctx.moodle, data, author,
                         now=datetime.fromtimestamp(NOW, UTC))  # fmt: skip


def set_timezone(site, username: str, zone: str) -> None:  # type: ignore[no-untyped-def]
    site.moodle._update("user", site.users[username], timezone=zone)


def test_a_manager_creates_a_schedule_and_sees_it_listed(app, site, client_as):
    set_timezone(site, "mgr_a", "America/New_York")
    client = client_as("mgr_a")
    new = client.get("/schedules/new").get_data(as_text=True)
    assert 'value="America/New_York"' in new  # the creator's Moodle timezone by default
    response = post(client, "/schedules/new", users=[str(site.users["ana"])])
    assert response.status_code == 302, response.get_data(as_text=True)
    [row] = schedules(app)
    assert (row.companyid, row.createdby, row.report) == (site.companies["A"],
                                                          site.users["mgr_a"],
                                                          "course_completion")  # fmt: skip
    assert json.loads(row.params_json) == {"days": "90"}
    assert json.loads(row.recipients_json) == {"users": [site.users["ana"]],
                                               "emails": ["boss@acme.example"]}  # fmt: skip
    assert audit_actions(app)[-1] == "schedule_create"
    listing = client.get("/schedules/").get_data(as_text=True)
    assert "Weekly completions" in listing and "Course completion" in listing
    assert "Weekly on Mon, Thu at 09:00 Europe/London" in listing
    assert exact_text(row.next_run_at, ZoneInfo("America/New_York")) in listing
    assert re.search(r'data-label="Recipients" class="num">2<', listing)


def test_the_next_five_runs_are_those_next_runs_gives_in_both_zones(app, site, client_as):
    set_timezone(site, "mgr_a", "Asia/Tokyo")
    client = client_as("mgr_a")
    response = post(client, "/schedules/new", action="preview", frequency="monthly", day="31",
                    at="01:30", weekdays=[], tz="Europe/London")  # fmt: skip
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    recurrence = parse_recurrence(frequency="monthly", day="31", at="01:30", tz="Europe/London")
    runs = next_runs(recurrence, datetime.fromtimestamp(NOW, UTC), 5)
    shown = re.findall(r'<td data-label="In Europe/London">([^<]+)</td><td data-label="Your '
                       r'time">([^<]+)</td>', page)  # fmt: skip
    london, tokyo = ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo")
    assert shown == [(exact_text(r, london), exact_text(r, tokyo)) for r in runs]
    assert shown[0][0] == "30 Nov 2026, 01:30 GMT"  # November has 30 days: its last one
    assert schedules(app) == []  # a preview saves nothing
    # The weekdays sent with a monthly schedule were ignored (hidden by the script).
    assert "field-error" not in page


def test_errors_are_shown_beside_their_fields_with_the_input_kept(app, site, client_as):
    client = client_as("mgr_a")
    response = post(client, "/schedules/new", title="Keep this title", filter_days="7",
                    at="25:61", tz="Mars/Olympus", users=[str(site.users["yuri"])],
                    emails="not-an-address", format="docx")  # fmt: skip
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for name in ("filter_days", "at", "tz", "users", "emails", "format"):
        assert f'id="error-{name}-1"' in page, name
    assert 'value="Keep this title"' in page and ">not-an-address</textarea>" in page
    assert f"user {site.users['yuri']} is not someone you may send" in page
    assert "Yuri" not in page  # someone outside the scope is not named
    assert schedules(app) == [] and "schedule_create" not in audit_actions(app)


def test_people_are_found_only_inside_the_authors_scope(app, site, client_as):
    client = client_as("mgr_a")
    found = post(client, "/schedules/new", action="find", people_search="Learner")
    page = found.get_data(as_text=True)
    assert found.status_code == 200
    assert "Ana Learner" in page and f'value="{site.users["ana"]}"' in page
    assert "Yuri" not in page and "Zoe Learner" not in page
    bolt = post(client_as("mgr_b"), "/schedules/new", action="find", people_search="Yuri")
    assert "Yuri Learner" in bolt.get_data(as_text=True)


def test_every_post_needs_the_csrf_token(app, site, client_as):
    client = client_as("mgr_a")
    assert client.post("/schedules/new", data=FORM).status_code == 400
    assert post(client, "/schedules/new").status_code == 302
    [row] = schedules(app)
    changed = client.post(f"/schedules/{row.id}", data={**FORM, "title": "Hijacked"})
    assert changed.status_code == 400
    assert client.post(f"/schedules/{row.id}/delete", data={}).status_code == 400
    assert [r.title for r in schedules(app)] == ["Weekly completions"]


def test_edit_and_delete_with_confirmation_are_audited(app, site, client_as):
    client = client_as("mgr_a")
    post(client, "/schedules/new")
    [row] = schedules(app)
    form = client.get(f"/schedules/{row.id}").get_data(as_text=True)
    assert 'value="Weekly completions"' in form and 'value="thu" checked' in form
    changed = post(client, f"/schedules/{row.id}", title="Renamed", active="")
    assert changed.status_code == 302
    [row] = schedules(app)
    assert row.title == "Renamed" and not row.active and row.next_run_at is None
    confirm = client.get(f"/schedules/{row.id}/delete").get_data(as_text=True)
    assert "Delete the schedule" in confirm and 'method="post"' in confirm
    token = csrf_token(client, "/schedules/new")
    assert client.post(f"/schedules/{row.id}/delete", data={"csrf_token": token}).status_code == 302
    assert schedules(app) == []
    assert audit_actions(app)[-3:] == ["schedule_create", "schedule_update", "schedule_delete"]


@pytest.mark.parametrize("username", ["ana", "teacher_a", "teacher_solo"])
def test_without_the_capability_every_route_is_refused_and_audited(app, site, client_as,
                                                                   username):  # fmt: skip
    row = bolt_schedule(app, site)
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    for method, path in (("GET", "/schedules/"), ("GET", "/schedules/new"),
                         ("POST", "/schedules/new"), ("GET", f"/schedules/{row.id}"),
                         ("POST", f"/schedules/{row.id}"),
                         ("GET", f"/schedules/{row.id}/delete"),
                         ("POST", f"/schedules/{row.id}/delete")):  # fmt: skip
        response = client.open(path, method=method, data={**FORM, "csrf_token": token})
        assert response.status_code == 403, (username, method, path)
    with app.extensions["manireports"].appdb.transaction() as db:
        denied = db.scalar(
            select(func.count()).where(
                AuditLog.action == "access_denied", AuditLog.userid == site.users[username]
            )
        )
    assert denied == 7
    assert [r.title for r in schedules(app)] == ["Forklift weekly"]


@pytest.mark.parametrize("username", ["mgr_a", "dept_a", "mgr_a_in_b"])
def test_another_companys_schedule_is_not_found_on_every_route(app, site, client_as, username):
    row = bolt_schedule(app, site)
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    for query in ({}, {"company": site.companies["B"]}):
        for method, path in (("GET", f"/schedules/{row.id}"), ("POST", f"/schedules/{row.id}"),
                             ("GET", f"/schedules/{row.id}/delete"),
                             ("POST", f"/schedules/{row.id}/delete")):  # fmt: skip
            response = client.open(
                path,
                method=method,
                query_string=query,
                data={**FORM, "csrf_token": token, "title": "Taken"},
            )
            assert response.status_code in (403, 404), (username, method, path, query)
            if not query or username == "mgr_a_in_b":
                assert response.status_code == 404, (username, method, path, query)
            assert "Forklift" not in response.get_data(as_text=True)
        listing = client.get("/schedules/", query_string=query)
        assert "Forklift" not in listing.get_data(as_text=True)
    [stored] = schedules(app)
    assert (stored.title, stored.id) == ("Forklift weekly", row.id)
    assert client_as("mgr_b").get(f"/schedules/{row.id}").status_code == 200
