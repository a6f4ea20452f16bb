"""The at-risk rules page: admins edit the site's rules, a company manager their company's;
every change is checked, CSRF-protected and audited."""

import re

from sqlalchemy import select

from common.models.access import AuditLog
from common.models.analytics import RiskRule
from tests.web.conftest import csrf_token


def rules(app):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        return {(r.companyid, r.ruletype): (r.threshold, r.weight, r.enabled)
                for r in db.scalars(select(RiskRule))}  # fmt: skip


def audit_actions(app):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        query = select(AuditLog).where(AuditLog.object_type == "risk_rule").order_by(AuditLog.id)
        return [(a.action, a.companyid, a.object_id) for a in db.scalars(query)]


def test_an_admin_creates_edits_disables_and_removes_a_site_rule(app, client_as):
    client = client_as("admin")
    page = client.get("/analytics/risk-rules").get_data(as_text=True)
    assert "Activities completed (%)" in page and "default" in page
    token = csrf_token(client, "/analytics/risk-rules")
    form = {"csrf_token": token, "ruletype": "min_completion_pct", "threshold": "60",
            "weight": "30", "enabled": "1"}  # fmt: skip
    assert client.post("/analytics/risk-rules/save", data=form).status_code == 302
    assert rules(app) == {(None, "min_completion_pct"): (60.0, 30, True)}
    assert client.post("/analytics/risk-rules/save",
                       data={**form, "threshold": "70"}).status_code == 302  # fmt: skip
    toggle = {"csrf_token": token, "ruletype": "min_completion_pct", "enabled": "0"}
    assert client.post("/analytics/risk-rules/toggle", data=toggle).status_code == 302
    assert rules(app) == {(None, "min_completion_pct"): (70.0, 30, False)}
    assert "saved here" in client.get("/analytics/risk-rules").get_data(as_text=True)
    delete = {"csrf_token": token, "ruletype": "min_completion_pct"}
    assert client.post("/analytics/risk-rules/delete", data=delete).status_code == 302
    assert rules(app) == {}
    assert client.post("/analytics/risk-rules/delete", data=delete).status_code == 404
    assert audit_actions(app) == [
        ("risk_rule_saved", None, "min_completion_pct"),
        ("risk_rule_saved", None, "min_completion_pct"),
        ("risk_rule_disabled", None, "min_completion_pct"),
        ("risk_rule_deleted", None, "min_completion_pct"),
    ]


def test_disabling_an_inherited_rule_keeps_its_values(app, client_as):
    client = client_as("admin")
    token = csrf_token(client, "/analytics/risk-rules")
    toggle = {"csrf_token": token, "ruletype": "max_days_since_login", "enabled": "0"}
    assert client.post("/analytics/risk-rules/toggle", data=toggle).status_code == 302
    assert rules(app) == {(None, "max_days_since_login"): (7.0, 20, False)}


def test_bad_input_names_the_field_and_changes_nothing(app, client_as):
    client = client_as("admin")
    token = csrf_token(client, "/analytics/risk-rules")
    form = {"csrf_token": token, "ruletype": "min_completion_pct", "threshold": "60",
            "weight": "30", "enabled": "1"}  # fmt: skip
    for field, value in (("weight", "101"), ("weight", "2.5"), ("threshold", "-1"),
                         ("threshold", "lots"), ("ruletype", "<script>")):  # fmt: skip
        response = client.post("/analytics/risk-rules/save", data={**form, field: value})
        assert response.status_code == 422, (field, value)
        body = response.get_data(as_text=True)
        assert field in body and "<script>" not in body
    stale = client.post("/analytics/risk-rules/save", data={**form, "csrf_token": "stale"})
    assert stale.status_code == 400
    assert rules(app) == {} and audit_actions(app) == []


def test_a_company_manager_edits_only_their_companys_rules(app, site, client_as):
    client = client_as("mgr_a")
    a, b = site.companies["A"], site.companies["B"]
    token = csrf_token(client, "/analytics/risk-rules")
    form = {"csrf_token": token, "ruletype": "min_active_days_30d", "threshold": "5",
            "weight": "10", "enabled": "1"}  # fmt: skip
    assert client.post("/analytics/risk-rules/save", data=form).status_code == 302
    assert rules(app) == {(a, "min_active_days_30d"): (5.0, 10, True)}
    page = client.get("/analytics/risk-rules").get_data(as_text=True)
    assert "saved here" in page and "default" in page
    response = client.post(f"/analytics/risk-rules/save?company={b}", data=form)
    assert response.status_code == 403
    assert client.get(f"/analytics/risk-rules?company={b}").status_code == 403
    assert rules(app) == {(a, "min_active_days_30d"): (5.0, 10, True)}
    assert audit_actions(app) == [("risk_rule_saved", a, "min_active_days_30d")]
    with app.extensions["manireports"].appdb.transaction() as db:
        denied = db.scalars(select(AuditLog).where(AuditLog.action == "access_denied")).all()
    assert any(d.companyid == b for d in denied)


def test_a_reporter_of_a_company_cannot_change_its_rules(app, site, client_as):
    # multi manages Acme but only reports on Bolt.
    client = client_as("multi")
    b = site.companies["B"]
    assert client.get(f"/analytics/risk-rules?company={b}").status_code == 403
    assert client.get("/analytics/risk-rules").status_code == 200
    assert client_as("teacher_a").get("/analytics/risk-rules").status_code == 403


def test_a_manager_of_two_companies_never_edits_the_site_rules(app, site, client_as):
    """With no company chosen, the page works on the company the header shows, not on the
    site's rules (which would reach every company's learners)."""
    moodle = site.moodle
    both = moodle.user(username="mgr_both", firstname="Bea", lastname="Both")
    for company in ("A", "B"):
        moodle.company_user(site.companies[company], both, managertype=1)
    client = client_as("mgr_both")
    page = client.get("/analytics/risk-rules").get_data(as_text=True)
    shown = re.search(r"<h1>At-risk rules of (\w+)</h1>", page)
    assert shown and shown[1] in ("Acme", "Bolt")
    company = site.companies["A" if shown[1] == "Acme" else "B"]
    form = {"csrf_token": csrf_token(client, "/analytics/risk-rules"),
            "ruletype": "min_active_days_30d", "threshold": "5", "weight": "10",
            "enabled": "1"}  # fmt: skip
    assert client.post("/analytics/risk-rules/save", data=form).status_code == 302
    assert rules(app) == {(company, "min_active_days_30d"): (5.0, 10, True)}
    assert client.post("/analytics/risk-rules/save?company=0", data=form).status_code == 403
    assert None not in {c for c, _ in rules(app)}


def test_a_refused_save_shows_the_page_with_every_problem_and_the_input_kept(app, client_as):
    """Not a bare error page: the rules page again (422), the typed values in the rule's row,
    each problem beside its field, the other rows as they were, nothing stored."""
    client = client_as("admin")
    token = csrf_token(client, "/analytics/risk-rules")
    form = {"csrf_token": token, "ruletype": "min_completion_pct", "threshold": "-7",
            "weight": "101", "enabled": "1"}  # fmt: skip
    response = client.post("/analytics/risk-rules/save", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<h1>At-risk rules of the site</h1>" in body
    assert "was not saved (2 problems)" in body
    row = body[body.index('id="rule-min_completion_pct-threshold"') - 200 :]
    row = row[: row.index("</tr>")]
    assert 'value="-7"' in row and 'value="101"' in row
    assert 'id="rule-min_completion_pct-threshold-error">must be from 0 to 100000<' in row
    assert 'id="rule-min_completion_pct-weight-error">must be from 0 to 100<' in row
    assert 'aria-invalid="true"' in row
    other = body[body.index('id="rule-max_days_since_login-threshold"') - 200 :]
    other = other[: other.index("</tr>")]
    assert 'value="7' in other and "field-error" not in other
    lots = client.post("/analytics/risk-rules/save", data={**form, "threshold": "lots"})
    assert lots.status_code == 422 and 'value="lots"' in lots.get_data(as_text=True)
    assert rules(app) == {} and audit_actions(app) == []
