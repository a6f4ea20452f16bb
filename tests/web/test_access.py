"""Capabilities from Moodle roles, tenant isolation on every route, audited denials."""

import re

import pytest
from flask import url_for
from sqlalchemy import select

from common.access import capabilities as caps
from common.access.viewer import load_viewer
from common.models.access import AuditLog, CapabilityGrant
from common.tenancy import TenantViolation, scope_for

NO_COMPANY_ROUTES = {"/login", "/logout", "/healthz", "/"}


def viewer(app, site, name):
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        return load_viewer(ctx.moodle, db, site.users[name])


def denials(app):
    with app.extensions["manireports"].appdb.transaction() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == "access_denied")))


@pytest.mark.parametrize(
    ("name", "has", "lacks"),
    [
        ("admin", caps.ALL_CAPABILITIES, frozenset()),
        ("mgr_a", {caps.VIEW_MANAGER_DASHBOARD, caps.MANAGE_REPORTS}, {caps.VIEW_ADMIN_DASHBOARD}),
        ("rep_b", {caps.VIEW_MANAGER_DASHBOARD}, {caps.MANAGE_REPORTS, caps.SCHEDULE}),
        ("teacher_a", {caps.VIEW_TEACHER_DASHBOARD}, {caps.VIEW_MANAGER_DASHBOARD}),
        ("ana", {caps.VIEW_STUDENT_DASHBOARD}, {caps.VIEW_TEACHER_DASHBOARD, caps.MANAGE_REPORTS}),
    ],
)
def test_capabilities_follow_moodle_roles(app, site, name, has, lacks):
    v = viewer(app, site, name)
    assert set(has) <= v.capabilities
    assert not set(lacks) & v.capabilities


def test_grants_in_the_app_db_add_capabilities(app, site):
    with app.extensions["manireports"].appdb.transaction() as db:
        db.add(CapabilityGrant(userid=site.users["ana"], capability=caps.CUSTOM_REPORTS))
    assert viewer(app, site, "ana").can(caps.CUSTOM_REPORTS)


def test_scope_refuses_another_company(app, site):
    mgr = viewer(app, site, "mgr_a")
    assert scope_for(mgr).company_ids == (site.companies["A"],)
    with pytest.raises(TenantViolation):
        scope_for(mgr, site.companies["B"])
    assert scope_for(viewer(app, site, "admin"), site.companies["B"]).company_ids == (
        site.companies["B"],
    )


# Example values for URL variables, so the walker reaches every route (ids that may not exist
# still prove the route refuses another company's scope before it looks anything up).
EXAMPLE_VALUES = {"name": "course_completion"}


def company_routes(app):
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if rule.rule in NO_COMPANY_ROUTES or rule.rule.startswith("/api/"):
            continue  # the API authenticates by token: tests/web/api walks it with tokens
        values = {arg: EXAMPLE_VALUES.get(arg, 1) for arg in rule.arguments}
        with app.test_request_context():
            yield url_for(rule.endpoint, **values)


def test_every_route_refuses_another_companys_data_and_audits_it(app, site, client_as):
    client = client_as("mgr_a")
    other = site.companies["B"]
    walked = list(company_routes(app))
    assert "/dashboards/completion" in walked and "/reports/course_completion/data" in walked
    for path in walked:
        response = client.get(f"{path}?company={other}")
        body = response.get_data(as_text=True)
        assert response.status_code in (403, 404) or (
            response.status_code == 200 and "Forklift" not in body and "Bolt" not in body
        ), f"{path} leaked company B data ({response.status_code})"
    refused = [d for d in denials(app) if d.companyid == other]
    assert refused, "denials were not audited"


def test_company_switch_only_to_own_companies(app, site, client_as):
    from tests.web.conftest import csrf_token

    client = client_as("mgr_a")
    token = csrf_token(client, "/dashboards/completion")
    response = client.post("/company/switch",
                           data={"company": site.companies["B"], "csrf_token": token})  # fmt: skip
    assert response.status_code == 403
    assert denials(app)[-1].companyid == site.companies["B"]


def test_missing_capability_is_403_with_message_and_audit(app, client_as):
    response = client_as("ana").get("/dashboards/completion")
    assert response.status_code == 403
    assert "capability" in response.get_data(as_text=True)
    assert denials(app)[-1].object_id == "GET /dashboards/completion"


def test_signed_out_requests_go_to_sign_in_or_401(app):
    client = app.test_client()
    assert client.get("/dashboards/completion").status_code == 302
    assert client.get("/reports/course_completion/data",
                      headers={"Accept": "application/json"}).status_code == 401  # fmt: skip


def test_audit_viewer_filters_and_is_admin_only(app, client_as):
    client_as("ana").get("/admin/audit/")  # denied, audited
    admin = client_as("admin")
    page = admin.get("/admin/audit/?action=access_denied").get_data(as_text=True)
    assert "GET /admin/audit/" in page
    assert admin.get("/admin/audit/?from=yesterday").status_code == 400
    assert "No entries match" in admin.get("/admin/audit/?from=2000-01-01&to=2000-01-02").get_data(
        as_text=True
    )


def test_company_selector_lists_only_the_viewers_companies(site, client_as):
    from tests.web.conftest import csrf_token

    single = client_as("mgr_a").get("/dashboards/completion").get_data(as_text=True)
    assert 'id="company"' not in single
    client = client_as("multi")
    page = client.get("/dashboards/completion").get_data(as_text=True)
    selector = re.search(r'<select id="company".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', selector)
    assert sorted(name for _, name in options) == ["Acme", "Bolt"]
    data = client.get("/reports/course_completion/data?days=90").get_json()
    assert "Forklift" not in {r["course"] for r in data["rows"]}  # Acme by default
    token = csrf_token(client, "/dashboards/completion")
    switched = client.post("/company/switch", data={"company": site.companies["B"],
                                                    "csrf_token": token,
                                                    "next": "/dashboards/completion"})  # fmt: skip
    assert switched.status_code == 302
    data = client.get("/reports/course_completion/data?days=90").get_json()
    assert {r["course"] for r in data["rows"]} == {"Forklift", "Shared Ethics"}
