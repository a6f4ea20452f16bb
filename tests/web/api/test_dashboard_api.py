"""`GET /api/v1/dashboard`: the caller's role dashboard, as data, in their tenant scope."""

from __future__ import annotations

from flask import Flask

from common.access.viewer import load_viewer
from common.dashboards import dashboard_data, dashboards_for, get_dashboard
from common.reports import get_report
from common.tenancy import scope_for
from tests.web.api.conftest import audit_rows, bearer
from web.reports.running import run_context, runnable

DASHBOARD = "/api/v1/dashboard"


def expected(app: Flask, user_id: int, role: str, query: str = "") -> dict:  # type: ignore[type-arg]
    """What common.dashboards computes for this user, with no API in between."""
    with app.test_request_context(f"/?{query}"):
        from flask import request

        ctx = app.extensions["manireports"]
        with ctx.appdb.transaction() as session:
            viewer = load_viewer(ctx.moodle, session, user_id)
        assert viewer is not None
        return dashboard_data(
            get_dashboard(role), run_context(scope_for(viewer), viewer), request.args,
            lambda r: runnable(r, viewer),
        )  # fmt: skip


def test_each_role_gets_its_own_dashboard(app, site, token_for):
    client = app.test_client()
    for username, role in (("admin", "admin"), ("mgr_a", "manager"), ("teacher_a", "teacher"),
                           ("ana", "student")):  # fmt: skip
        response = client.get(DASHBOARD, headers=bearer(token_for(username)))
        assert response.status_code == 200, username
        body = response.get_json()
        assert body["dashboard"] == role, username
        assert body == expected(app, site.users[username], role), username


def test_widgets_are_of_reports_the_caller_may_run(app, site, token_for):
    body = app.test_client().get(DASHBOARD, headers=bearer(token_for("mgr_a"))).get_json()
    assert body["widgets"], "the manager's dashboard has widgets"
    for widget in body["widgets"]:
        report = get_report(widget["report"])
        assert report is not None and "viewmanagerdashboard" in " ".join(report.capabilities)


def test_filters_apply_and_bad_ones_name_the_field(app, site, token_for):
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    course = site.courses["Fire Safety"]
    response = client.get(f"{DASHBOARD}?course={course}", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == expected(app, site.users["mgr_a"], "manager", f"course={course}")
    bad = client.get(f"{DASHBOARD}?course=abc", headers=headers)
    assert bad.status_code == 400 and bad.get_json()["field"] == "course"


def test_role_picks_another_of_the_callers_dashboards(app, site, token_for):
    client, headers = app.test_client(), bearer(token_for("admin"))
    with app.app_context():
        ctx = app.extensions["manireports"]
        with ctx.appdb.transaction() as session:
            admin = load_viewer(ctx.moodle, session, site.users["admin"])
        roles = [d.role for d in dashboards_for(admin)]
    assert roles[0] == "admin" and "manager" in roles
    body = client.get(f"{DASHBOARD}?role=manager", headers=headers).get_json()
    assert body["dashboard"] == "manager"


def test_a_dashboard_the_caller_does_not_have_is_404(app, token_for):
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    for role in ("admin", "student", "no_such_role"):
        response = client.get(f"{DASHBOARD}?role={role}", headers=headers)
        assert response.status_code == 404, role
        assert response.get_json()["field"] == "role"
        assert "manager" in response.get_json()["error"]  # theirs are named


def test_no_dashboard_capability_is_403(app, site, token_for):
    # "legacy" signs in but holds no role: no dashboard, and the refusal is audited.
    response = app.test_client().get(DASHBOARD, headers=bearer(token_for("legacy")))
    assert response.status_code == 403
    assert audit_rows(app, "access_denied")[-1].userid == site.users["legacy"]


def test_another_company_is_refused_and_audited(app, site, token_for):
    other = site.companies["B"]
    response = app.test_client().get(
        f"{DASHBOARD}?company={other}", headers=bearer(token_for("mgr_a"))
    )
    assert response.status_code == 403
    assert audit_rows(app, "access_denied")[-1].companyid == other


def test_a_company_restricted_token_reads_its_company(app, site, token_for):
    headers = bearer(token_for("admin", company="A"))
    client = app.test_client()
    assert (
        client.get(f"{DASHBOARD}?company={site.companies['B']}", headers=headers).status_code == 403
    )
    assert client.get(DASHBOARD, headers=headers).status_code == 200


def test_a_site_admin_naming_a_company_that_does_not_exist_gets_404(app, token_for):
    headers = bearer(token_for("admin"))
    client = app.test_client()
    for path in (DASHBOARD, "/api/v1/reports", "/api/v1/reports/course_completion"):
        response = client.get(f"{path}?company=987654", headers=headers)
        assert response.status_code == 404, path
        assert response.is_json
