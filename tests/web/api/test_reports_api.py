"""Reports over the API: the dashboard's own rows for the token's user, errors as JSON."""

from __future__ import annotations

from common.access.viewer import load_viewer
from common.reports import registered_reports
from tests.web.api.conftest import bearer


def test_report_rows_equal_the_dashboard_data_for_the_same_viewer(app, client_as, token_for):
    for username in ("admin", "mgr_a", "teacher_a"):
        dashboard = client_as(username).get("/reports/course_completion/data?days=90")
        api = app.test_client().get(
            "/api/v1/reports/course_completion?days=90", headers=bearer(token_for(username))
        )
        assert dashboard.status_code == api.status_code == 200, username
        assert api.get_json() == dashboard.get_json(), username
        assert api.get_json()["rows"], "the comparison needs rows"


def runnable_names(app, site, username: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The registered reports this user's capabilities reach on this site, in registry order."""
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as session:
        viewer = load_viewer(ctx.moodle, session, site.users[username])
    features = ctx.moodle.features()
    return [r.type_name for r in registered_reports()
            if r.enabled(features) and viewer.can_any(r.capabilities)]  # fmt: skip


def test_listing_shows_only_reports_the_user_may_run(app, site, token_for):
    client = app.test_client()
    manager = client.get("/api/v1/reports", headers=bearer(token_for("mgr_a"))).get_json()
    assert [r["name"] for r in manager["reports"]] == runnable_names(app, site, "mgr_a")
    listed = {r["name"]: r for r in manager["reports"]}["course_completion"]
    assert listed["url"] == "/api/v1/reports/course_completion"
    student = client.get("/api/v1/reports", headers=bearer(token_for("ana"))).get_json()
    assert [r["name"] for r in student["reports"]] == runnable_names(app, site, "ana")
    assert "course_completion" not in {r["name"] for r in student["reports"]}


def test_errors_are_json_bad_parameters_400_naming_the_field(app, token_for):
    client = app.test_client()
    headers = bearer(token_for("mgr_a"))
    response = client.get("/api/v1/reports/course_completion?days=7", headers=headers)
    assert response.status_code == 400
    assert response.get_json() == {"error": "must be one of 30, 90", "field": "days"}
    response = client.get("/api/v1/reports/course_completion?company=acme", headers=headers)
    assert response.status_code == 400 and response.get_json()["field"] == "company"
    response = client.get("/api/v1/reports/no_such", headers=headers)
    assert response.status_code == 404 and "no_such" in response.get_json()["error"]
    assert client.get("/api/v1/no/such/route", headers=headers).is_json
    response = client.delete("/api/v1/reports", headers=headers)
    assert response.status_code == 405 and response.is_json
