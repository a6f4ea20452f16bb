"""Privacy pages: only site admins reach the requests page; export and delete need the CSRF
token (and deletion its confirmation); both are audited; the statement shows the retention
settings and whether tracking is on."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.models.analytics import UsertimeSession
from common.privacy import DELETE_ACTION, EXPORT_ACTION
from tests.web.conftest import csrf_token

WHEN = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def held(app, site):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        for name in ("ana", "ben"):
            s.add(UsertimeSession(userid=site.users[name], courseid=3, sessionstart=WHEN,
                                  lastbeat=WHEN, duration=90))  # fmt: skip
    return site


def sessions(app) -> list[int]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        return sorted(s.scalars(select(UsertimeSession.userid)))


def audited(app, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def denials(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        query = select(func.count()).where(AuditLog.action == "access_denied")
        return int(s.scalar(query) or 0)


@pytest.mark.parametrize("who", ["mgr_a", "teacher_a", "ana", "dept_a"])
def test_only_site_admins_reach_the_requests(app, held, client_as, who):  # type: ignore[no-untyped-def]
    client = client_as(who)
    token = csrf_token(client, "/dashboards/")
    ana = held.users["ana"]
    before = denials(app)
    assert client.get(f"/admin/privacy/?user={ana}").status_code == 403
    assert client.get(f"/admin/privacy/{ana}/delete").status_code == 403
    exported = client.post(f"/admin/privacy/{ana}/export", data={"csrf_token": token})
    assert exported.status_code == 403 and exported.mimetype != "application/zip"
    deleted = client.post(f"/admin/privacy/{ana}/delete",
                          data={"csrf_token": token, "confirm": str(ana)})  # fmt: skip
    assert deleted.status_code == 403
    assert denials(app) == before + 4
    assert sessions(app) == sorted([held.users["ana"], held.users["ben"]])
    assert audited(app, EXPORT_ACTION) == audited(app, DELETE_ACTION) == []


def test_signed_out_visitors_are_sent_to_sign_in(app, held):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/admin/privacy/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_admin_finds_a_person_by_name_and_exports(app, held, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    ana = held.users["ana"]
    page = admin.get("/admin/privacy/?user=Ana+Learner").get_data(as_text=True)
    assert "Ana Learner" in page and "1 row names this person." in page
    assert f'action="/admin/privacy/{ana}/export"' in page
    several = admin.get("/admin/privacy/?user=Learner").get_data(as_text=True)
    assert "pick one" in several and f'href="/admin/privacy/?user={ana}"' in several
    nobody = admin.get("/admin/privacy/?user=Nobody+Here").get_data(as_text=True)
    assert "No one matches" in nobody
    assert admin.get("/admin/privacy/?user=0").status_code == 400
    assert admin.get("/admin/privacy/?user=" + "x" * 101).status_code == 400
    token = csrf_token(admin, f"/admin/privacy/?user={ana}")
    response = admin.post(f"/admin/privacy/{ana}/export", data={"csrf_token": token})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert f"user-{ana}-data.zip" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        rows = json.loads(archive.read("manireports_usertime_sessions.json"))
    assert [r["userid"] for r in rows] == [ana]
    (entry,) = audited(app, EXPORT_ACTION)
    assert (entry.userid, entry.object_id) == (held.users["admin"], str(ana))


def test_export_and_delete_need_the_csrf_token(app, held, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    ana = held.users["ana"]
    no_token = admin.post(f"/admin/privacy/{ana}/export")
    assert no_token.status_code == 400 and no_token.mimetype != "application/zip"
    forged = admin.post(f"/admin/privacy/{ana}/delete",
                        data={"csrf_token": "forged", "confirm": str(ana)})  # fmt: skip
    assert forged.status_code == 400
    assert sessions(app) == sorted([ana, held.users["ben"]])
    assert audited(app, EXPORT_ACTION) == audited(app, DELETE_ACTION) == []


def test_delete_asks_for_confirmation_then_deletes_only_that_person(app, held, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    ana, ben = held.users["ana"], held.users["ben"]
    asked = admin.get(f"/admin/privacy/{ana}/delete").get_data(as_text=True)
    assert "Delete Ana Learner’s data" in asked and 'name="confirm"' in asked
    token = csrf_token(admin, f"/admin/privacy/{ana}/delete")
    unconfirmed = admin.post(f"/admin/privacy/{ana}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 400
    assert "Tick the box" in unconfirmed.get_data(as_text=True)
    wrong = admin.post(f"/admin/privacy/{ana}/delete",
                       data={"csrf_token": token, "confirm": str(ben)})  # fmt: skip
    assert wrong.status_code == 400
    assert sessions(app) == sorted([ana, ben])
    done = admin.post(f"/admin/privacy/{ana}/delete",
                      data={"csrf_token": token, "confirm": str(ana)})  # fmt: skip
    assert done.status_code == 302 and done.headers["Location"].endswith(f"?user={ana}")
    assert sessions(app) == [ben]
    after = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert "Deleted 1 rows about user" in after
    (entry,) = audited(app, DELETE_ACTION)
    assert (entry.userid, entry.object_id) == (held.users["admin"], str(ana))


def test_a_user_gone_from_moodle_is_still_found_by_id(app, held, client_as):  # type: ignore[no-untyped-def]
    gone = held.users["gone"]
    page = client_as("admin").get(f"/admin/privacy/?user={gone}").get_data(as_text=True)
    assert f"User {gone}" in page and "not in Moodle, or deleted there" in page


def test_the_statement_shows_the_retention_settings(app, held):  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(retention_audit_days=400,
                                               retention_report_runs_days=0)  # fmt: skip
    page = app.test_client().get("/privacy").get_data(as_text=True)
    assert "400 days" in page and "until deleted (no limit set)" in page
    assert "730 days after a session’s last activity" in page
    assert "Time tracking is <strong>on</strong>" in page
    ctx.settings = ctx.settings.with_overrides(time_tracking_enabled=False)
    off = app.test_client().get("/privacy").get_data(as_text=True)
    assert "Time tracking is <strong>off</strong>" in off and "heartbeat tracking is off" in off


def test_the_snippet_page_says_tracking_is_off(app, held, client_as):  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(time_tracking_enabled=False)
    page = client_as("admin").get("/tracking/").get_data(as_text=True)
    assert "Time tracking is <strong>off</strong>" in page


def test_the_menu_offers_privacy_requests_to_site_admins_only(app, held, client_as):  # type: ignore[no-untyped-def]
    assert 'href="/admin/privacy/"' in client_as("admin").get("/dashboards/").get_data(as_text=True)
    for who in ("mgr_a", "ana"):
        page = client_as(who).get("/dashboards/").get_data(as_text=True)
        assert 'href="/admin/privacy/"' not in page, who
