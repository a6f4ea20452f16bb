"""Email jobs over the API: created, queued for the mailers and audited as from the UI;
a bad body is a 422 naming the field, with nothing written."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from common.access.api_tokens import SCOPE_EMAIL_READ
from common.models.mail import CloudJob, CloudRecipient, CloudTemplate
from tests.web.api.conftest import audit_rows, bearer

JOBS = "/api/v1/email/jobs"


def job_body(**overrides):  # type: ignore[no-untyped-def]
    body = {
        "type": "bulk",
        "subject": "Hello {{firstname}}",
        "html": "<p>Dear {{firstname}}, {{course}} starts soon.</p>",
        "recipients": [
            {"email": "ana@acme.example", "data": {"firstname": "Ana"}},
            {"email": "ben@acme.example", "data": {"firstname": "Ben"}},
            {"email": "cara@acme.example"},
        ],
        "variables": {"course": "Fire Safety"},
    }
    body.update(overrides)
    return body


def counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        jobs = session.scalar(select(func.count()).select_from(CloudJob))
        recipients = session.scalar(select(func.count()).select_from(CloudRecipient))
    return jobs, recipients


def test_manager_creates_a_job_end_to_end(app, site, token_for):
    client = app.test_client()
    headers = bearer(token_for("mgr_a"))
    response = client.post(JOBS, json=job_body(), headers=headers)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()["job"]
    assert created["status"] in ("pending", "queued") and created["dispatched"] is True
    assert created["company"] == site.companies["A"] and created["recipients_total"] == 3
    assert response.headers["Location"] == f"{JOBS}/{created['id']}"
    with app.extensions["manireports"].appdb.transaction() as session:
        job = session.get(CloudJob, created["id"])
        recipients = session.scalars(
            select(CloudRecipient).where(CloudRecipient.jobid == job.id).order_by(CloudRecipient.id)
        ).all()
    assert (job.source, job.createdby, job.subject_template) == (
        "api", site.users["mgr_a"], "Hello {{firstname}}")  # fmt: skip
    assert json.loads(job.payload) == {"variables": {"course": "Fire Safety"}}
    assert [r.email for r in recipients] == ["ana@acme.example", "ben@acme.example",
                                             "cara@acme.example"]  # fmt: skip
    assert json.loads(recipients[0].recipient_data) == {"firstname": "Ana"}
    assert {r.status for r in recipients} == {"pending"}
    audit = audit_rows(app, "cloud_job_created")
    assert len(audit) == 1 and audit[0].userid == site.users["mgr_a"]
    assert audit[0].companyid == site.companies["A"] and '"source": "api"' in audit[0].details
    status = client.get(response.headers["Location"], headers=headers)
    assert status.status_code == 200
    shown = status.get_json()["job"]
    assert shown["recipients_by_status"] == {"pending": 3} and shown["progress_pct"] == 0.0


def test_without_templates_the_companys_own_template_is_used(app, site, token_for):
    with app.extensions["manireports"].appdb.transaction() as session:
        session.add(CloudTemplate(companyid=site.companies["A"], jobtype="bulk",
                                  subject="Acme news", html="<p>{{firstname}}</p>"))  # fmt: skip
    body = job_body()
    del body["subject"], body["html"]
    response = app.test_client().post(JOBS, json=body, headers=bearer(token_for("mgr_a")))
    assert response.status_code == 201
    with app.extensions["manireports"].appdb.transaction() as session:
        job = session.get(CloudJob, response.get_json()["job"]["id"])
    assert (job.subject_template, job.html_template) == ("Acme news", "<p>{{firstname}}</p>")


BAD_PAYLOADS = {
    "missing-recipients": ({"recipients": None}, "recipients"),
    "no-recipients": ({"recipients": []}, "recipients"),
    "invalid-email": (
        {"recipients": [{"email": "ana@acme.example"}, {"email": "not-an-address"}]},
        "recipients[1].email",
    ),
    "bad-data": ({"recipients": [{"email": "ana@acme.example", "data": ["x"]}]},
                 "recipients[0].data"),
    "unknown-type": ({"type": "newsletter"}, "type"),
    "unclosed-section": ({"subject": "Hello {{#firstname}}"}, "subject"),
    "stray-end-tag": ({"html": "<p>{{/course}}</p>"}, "html"),
    "subject-without-html": ({"html": None}, "html"),
    "unknown-field": ({"body": "<p>hi</p>"}, "body"),
    "bad-company": ({"company": "acme"}, "company"),
}  # fmt: skip


def test_bad_payloads_are_422_naming_the_field_and_write_nothing(app, token_for):
    client = app.test_client()
    headers = bearer(token_for("mgr_a"))
    for case, (change, field) in BAD_PAYLOADS.items():
        body = {k: v for k, v in {**job_body(), **change}.items() if v is not None}
        response = client.post(JOBS, json=body, headers=headers)
        assert response.status_code == 422, (case, response.get_json())
        assert response.get_json()["field"] == field and response.get_json()["error"], case
    response = client.post(JOBS, data="[1, 2", headers={**headers,
                           "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 400 and response.is_json
    assert counts(app) == (0, 0)
    assert audit_rows(app, "cloud_job_created") == []


def test_a_site_wide_token_must_name_the_company(app, site, token_for):
    client = app.test_client()
    headers = bearer(token_for("admin"))
    response = client.post(JOBS, json=job_body(), headers=headers)
    assert response.status_code == 422 and response.get_json()["field"] == "company"
    response = client.post(JOBS, json=job_body(company=site.companies["B"]), headers=headers)
    assert (
        response.status_code == 201 and response.get_json()["job"]["company"] == site.companies["B"]
    )


def test_reading_jobs_needs_only_the_read_scope_and_unknown_jobs_are_404(app, token_for):
    headers = bearer(token_for("mgr_a", scopes=(SCOPE_EMAIL_READ,)))
    client = app.test_client()
    assert client.post(JOBS, json=job_body(), headers=headers).status_code == 403
    response = client.get(f"{JOBS}/999", headers=headers)
    assert response.status_code == 404 and response.get_json() == {"error": "no email job 999"}
