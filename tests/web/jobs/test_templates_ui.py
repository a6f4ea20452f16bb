"""The per-company email template editor: checked and audited changes, safe previews and
tenant isolation (a manager edits their company's templates only; site admins the site's)."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import select

from common.mail.templates import templates_for
from common.models.access import AuditLog
from common.models.mail import CloudTemplate
from tests.web.conftest import csrf_token

BASE = "/admin/email-offload/templates/"


def edit_url(company: int, job_type: str = "bulk") -> str:
    return f"{BASE}edit?company={company}&type={job_type}"


def post_template(client, company: int, job_type: str = "bulk", **fields):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_token(client, f"{BASE}?company={company}"), "action": "save",
            "subject": "Welcome {{firstname}}", "html": "<p>Hello {{firstname}}</p>",
            "text": "Hello {{firstname}}", **fields}  # fmt: skip
    return client.post(edit_url(company, job_type), data=form)


def stored(app) -> list[CloudTemplate]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(CloudTemplate).order_by(CloudTemplate.id)))


def audit(app, prefix: str = "email_template_") -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action.startswith(prefix)))
        return list(rows)


def test_manager_lists_every_job_type_with_the_template_in_use(site, client_as):
    page = client_as("mgr_a").get(f"{BASE}?company={site.companies['A']}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    for job_type in ("license_allocation", "user_created", "bulk", "certificate"):
        assert f"type={job_type}" in body
    assert "Your certificate: {{course}}" in body  # the built-in certificate subject
    assert "company=0" not in body  # site-wide templates are for site admins


def test_create_update_delete_are_stored_used_by_new_jobs_and_audited(app, site, client_as):
    company = site.companies["A"]
    client = client_as("mgr_a")
    assert post_template(client, company).status_code == 302
    [row] = stored(app)
    assert (row.companyid, row.jobtype, row.text) == (company, "bulk", "Hello {{firstname}}")
    with app.extensions["manireports"].appdb.transaction() as session:
        assert templates_for(session, company, "bulk")[0] == "Welcome {{firstname}}"
        assert templates_for(session, site.companies["B"], "bulk")[0] == "{{{subject}}}"
    assert post_template(client, company, subject="Hi {{firstname}}", text="").status_code == 302
    [row] = stored(app)
    assert row.subject == "Hi {{firstname}}" and row.text is None
    token = csrf_token(client, f"{BASE}?company={company}")
    deleted = client.post(f"{BASE}delete?company={company}&type=bulk", data={"csrf_token": token})
    assert deleted.status_code == 302 and stored(app) == []
    entries = audit(app)
    assert [e.action for e in entries] == [
        "email_template_created", "email_template_updated", "email_template_deleted"]  # fmt: skip
    assert {e.userid for e in entries} == {site.users["mgr_a"]}
    assert {e.companyid for e in entries} == {company}
    assert json.loads(entries[1].details)["changed"] == ["subject", "text"]


INVALID = {
    "unclosed-section": ({"html": "<p>{{#course}}</p>"}, "html", "was never closed"),
    "stray-end": ({"subject": "Hi {{/firstname}}"}, "subject", "not opened"),
    "partial": ({"text": "{{> header}}"}, "text", "partials"),
    "empty-subject": ({"subject": ""}, "subject", "required"),
}


def test_invalid_templates_are_422_with_the_field_and_error_and_store_nothing(app, site, client_as):
    client = client_as("mgr_a")
    for case, (fields, field, reason) in INVALID.items():
        response = post_template(client, site.companies["A"], **fields)
        body = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 422, case
        assert f"{field}: " in body and reason in body, case
    assert stored(app) == [] and audit(app) == []


def test_preview_renders_sample_variables_escaped_and_writes_nothing(app, site, client_as):
    client = client_as("mgr_a")
    sample = json.dumps({"firstname": "<script>alert('x')</script>Ana", "course": "Fire Safety"})
    response = post_template(
        client, site.companies["A"], action="preview", sample=sample,
        subject="Welcome {{firstname}}", html="<h2>{{course}}</h2><script>steal()</script>",
    )  # fmt: skip
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert" not in body and "<script>steal" not in body
    assert "sandbox srcdoc=" in body and "&lt;h2&gt;Fire Safety&lt;/h2&gt;" in body
    # The subject is plain text: Mustache does not escape it, the page does.
    assert "Welcome &lt;script&gt;alert(" in body
    bad_sample = post_template(client, site.companies["A"], action="preview", sample="{a: 1}")
    assert bad_sample.status_code == 422
    assert "sample: not valid JSON" in bad_sample.get_data(as_text=True)
    assert stored(app) == [] and audit(app) == []


def test_another_companys_templates_are_refused_and_audited(app, site, client_as):
    other = site.companies["B"]
    client = client_as("mgr_a")
    token = csrf_token(client, f"{BASE}?company={site.companies['A']}")
    assert client.get(f"{BASE}?company={other}").status_code == 403
    assert client.get(edit_url(other)).status_code == 403
    form = {"csrf_token": token, "subject": "x", "html": "y", "action": "save"}
    assert client.post(edit_url(other), data=form).status_code == 403
    deleted = client.post(f"{BASE}delete?company={other}&type=bulk", data={"csrf_token": token})
    assert deleted.status_code == 403
    # Company 0 holds the site-wide templates: a site admin's, not a manager's.
    assert client.get(f"{BASE}?company=0").status_code == 403
    assert stored(app) == []
    denials = audit(app, "access_denied")
    assert len([d for d in denials if d.companyid == other]) == 4


def test_site_admin_edits_site_wide_templates_that_companies_inherit(app, site, client_as):
    admin = client_as("admin")
    assert "company=0" in admin.get(f"{BASE}?company={site.companies['A']}").get_data(as_text=True)
    assert post_template(admin, 0, "user_created", subject="Welcome to the LMS").status_code == 302
    [row] = stored(app)
    assert row.companyid == 0
    assert audit(app)[0].companyid is None and json.loads(audit(app)[0].details)["site_wide"]
    listing = client_as("mgr_a").get(f"{BASE}?company={site.companies['A']}")
    assert "Welcome to the LMS" in listing.get_data(as_text=True)
    form = client_as("mgr_a").get(edit_url(site.companies["A"], "user_created"))
    assert "starts from the site-wide one" in " ".join(form.get_data(as_text=True).split())


def test_template_forms_need_csrf_and_the_capability(app, site, client_as):
    form = {"subject": "x", "html": "y", "action": "save"}  # no csrf_token
    response = client_as("mgr_a").post(edit_url(site.companies["A"]), data=form)
    assert response.status_code == 400 and stored(app) == []
    assert client_as("ana").get(BASE).status_code == 403


BROKEN = "<p>Hi {{firstname}</p> {{#license}}"


def test_the_broken_template_is_refused_in_preview_and_save_with_line_and_column(
    app, site, client_as
):
    client = client_as("mgr_a")
    for action in ("preview", "save"):
        response = post_template(client, site.companies["A"], action=action, html=BROKEN)
        body = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 422, action
        assert "html: line 1, column 7: the tag '{{firstname}</p>' is not closed" in body, action
        assert "line 1, column 24: the section 'license' was never closed" in body, action
        assert "<p>Hi </p>" not in body  # no truncated preview
    assert stored(app) == [] and audit(app) == []


def live(client, company: int, **fields):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_token(client, f"{BASE}?company={company}"),
            "subject": "Welcome {{firstname}}", "html": "<p>Hello {{firstname}}</p>",
            "text": "", "sample": json.dumps({"firstname": "Ana"}), **fields}  # fmt: skip
    return client.post(f"{BASE}preview?company={company}&type=bulk", data=form,
                       headers={"Accept": "application/json"})  # fmt: skip


def test_live_preview_renders_or_lists_every_problem_with_its_position(app, site, client_as):
    client = client_as("mgr_a")
    company = site.companies["A"]
    good = live(client, company)
    assert good.status_code == 200
    no_issues = {"subject": [], "html": [], "text": []}
    assert good.get_json() == {"ok": True, "subject": "Welcome Ana", "html": "<p>Hello Ana</p>",
                               "text": None, "issues": no_issues}  # fmt: skip
    bad = live(client, company, html=BROKEN, subject="Hi {{/x}}")
    result = bad.get_json()
    assert bad.status_code == 422 and result["ok"] is False
    assert [(i["line"], i["column"]) for i in result["issues"]["html"]] == [(1, 7), (1, 24)]
    assert (
        result["issues"]["subject"][0]["message"] == "'{{/x}}' closes a section that was not opened"
    )
    assert {e["field"] for e in result["errors"]} == {"subject", "html"}
    escaped = live(client, company, sample=json.dumps({"firstname": "<b>x</b>"}))
    assert escaped.get_json()["html"] == "<p>Hello &lt;b&gt;x&lt;/b&gt;</p>"
    assert live(client, site.companies["B"]).status_code == 403
    assert client.post(f"{BASE}preview?company={company}&type=bulk", data={}).status_code == 400
    assert stored(app) == [] and audit(app) == []


def test_the_editor_lists_the_variables_of_its_job_type(site, client_as):
    client = client_as("mgr_a")
    page = client.get(edit_url(site.companies["A"], "certificate")).get_data(as_text=True)
    assert "{{certificate_url}}" in page and "{{course}}" in page
    page = client.get(edit_url(site.companies["A"], "user_created")).get_data(as_text=True)
    assert "{{body}}" in page and "{{certificate_url}}" not in page


def heading(body: str) -> str:
    """The page's h1 as text."""
    start = body.index("<h1>") + len("<h1>")
    text = re.sub(r"<[^>]+>", "", body[start : body.index("</h1>", start)])
    return " ".join(html.unescape(text).split())


def test_pages_name_the_company_they_edit(site, client_as):
    client = client_as("mgr_a")
    listing = client.get(f"{BASE}?company={site.companies['A']}").get_data(as_text=True)
    assert "(Acme)" in heading(listing) and f"company {site.companies['A']}" not in listing
    editor = client.get(edit_url(site.companies["A"])).get_data(as_text=True)
    assert heading(editor) == "Email template: bulk (Acme)"
    site_wide = client_as("admin").get(f"{BASE}?company=0").get_data(as_text=True)
    assert "(site-wide defaults)" in heading(site_wide)


def test_a_manager_of_several_companies_works_on_the_chosen_one(app, site, client_as):
    """No 400 for someone who manages two companies: the page works on the company the
    header shows, and the switcher changes it."""
    moodle = site.moodle
    both = moodle.user(username="mgr_both", firstname="Bea", lastname="Both")
    for company in ("A", "B"):
        moodle.company_user(site.companies[company], both, managertype=1)
    client = client_as("mgr_both")
    first = client.get(BASE)
    assert first.status_code == 200
    shown = heading(first.get_data(as_text=True))
    assert shown in ("Email templates (Acme)", "Email templates (Bolt)")
    # Switch to Bolt in the header; the editor (no ?company) now saves Bolt's template.
    token = csrf_token(client, BASE)
    switched = client.post("/company/switch", data={"company": site.companies["B"],
                                                    "csrf_token": token, "next": BASE})  # fmt: skip
    assert switched.status_code == 302
    assert heading(client.get(BASE).get_data(as_text=True)) == "Email templates (Bolt)"
    form = {"csrf_token": csrf_token(client, BASE), "action": "save", "subject": "Hi",
            "html": "<p>Hi</p>", "text": ""}  # fmt: skip
    assert client.post(f"{BASE}edit?type=bulk", data=form).status_code == 302
    assert [(r.companyid, r.jobtype) for r in stored(app)] == [(site.companies["B"], "bulk")]
    # A company they do not manage is still refused.
    assert client.get(f"{BASE}?company={site.companies['B'] + 999}").status_code in (403, 404)


def test_a_site_admin_on_all_companies_works_on_the_first_company(site, client_as):
    page = client_as("admin").get(BASE).get_data(as_text=True)
    assert heading(page) == "Email templates (Acme)"  # Acme before Bolt by name
    assert "company=0" in page  # the site-wide templates are one link away
