"""Email offload settings and the job monitor: capabilities, tenancy, masking, audit."""

from __future__ import annotations

import json

from sqlalchemy import select

from common.models.access import AuditLog
from common.models.mail import CloudConf, CloudJob
from tests.services.mailer.conftest import configure, make_job, recipient_statuses, recipients
from tests.web.conftest import csrf_token

SETTINGS_URL = "/admin/email-offload/"


def settings_form(client, **overrides):  # type: ignore[no-untyped-def]
    form = {
        "csrf_token": csrf_token(client, SETTINGS_URL),
        "enabled": "on",
        "provider": "smtp",
        "sender_email": "noreply@acme.example",
        "chunk_size": "200",
        "rate_per_s": "50",
        "offloaded_events": ["user_create", "license_allocated"],
        "smtp__host": "smtp.acme.example",
        "smtp__port": "587",
        "smtp__security": "starttls",
        "smtp__username": "relay-user",
        "smtp__password": "Sup3r-Secret-Relay-Pass",
        "smtp__validate_certs": "on",
        # smtp.acme.example is no server: these tests are about storing (the connection
        # check has its own, tests/web/test_provider_check.py).
        "skip_connection_check": "on",
    }
    form.update(overrides)
    return form


def audit(app, action):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_manager_saves_settings_secrets_are_encrypted_masked_and_audited(app, site, client_as):
    client = client_as("mgr_a")
    response = client.post(SETTINGS_URL, data=settings_form(client))
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.extensions["manireports"].appdb.transaction() as session:
        row = session.scalar(select(CloudConf))
        assert row.companyid == site.companies["A"]
        assert "Sup3r-Secret" not in row.secrets and "Sup3r-Secret" not in row.settings
        assert row.rate_per_s == 50 and row.offloaded_events == "license_allocated,user_create"
    page = client.get(SETTINGS_URL).get_data(as_text=True)
    assert "Sup3r-Secret-Relay-Pass" not in page and "••••Pass" in page
    entries = audit(app, "email_offload_saved")
    assert len(entries) == 1 and entries[0].userid == site.users["mgr_a"]
    assert "Sup3r" not in entries[0].details and "password" in entries[0].details
    # Saving again with the secret left blank keeps it.
    assert (
        client.post(SETTINGS_URL, data=settings_form(client, smtp__password="")).status_code == 302
    )
    with app.extensions["manireports"].appdb.transaction() as session:
        from common.mail.config import load_config
        from tests.support import TEST_SECRET

        config = load_config(session, site.companies["A"], TEST_SECRET)
    assert config.provider_config["password"] == "Sup3r-Secret-Relay-Pass"


def test_invalid_settings_answer_422_with_the_field_and_store_nothing(app, client_as):
    client = client_as("mgr_a")
    form = settings_form(client, sender_email="not an address", chunk_size="0", smtp__host="")
    response = client.post(SETTINGS_URL, data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "sender_email:" in body and "chunk_size:" in body and "host: required" in body
    with app.extensions["manireports"].appdb.transaction() as session:
        assert session.scalar(select(CloudConf)) is None


def test_saving_can_queue_a_test_message(app, site, client_as):
    client = client_as("mgr_a")
    response = client.post(SETTINGS_URL, data=settings_form(client, test_to="me@acme.example"))
    assert response.status_code == 302
    with app.extensions["manireports"].appdb.transaction() as session:
        job = session.scalar(select(CloudJob))
    assert job.companyid == site.companies["A"] and job.recipients_total == 1


def test_settings_and_jobs_need_the_capability(client_as):
    client = client_as("ana")
    assert client.get(SETTINGS_URL).status_code == 403
    assert client.get("/jobs/").status_code == 403


def test_monitor_shows_only_the_managers_company_and_refuses_the_other(app, site, client_as):
    appdb = app.extensions["manireports"].appdb
    own = make_job(appdb, 4, site.companies["A"])
    other = make_job(appdb, 4, site.companies["B"])
    client = client_as("mgr_a")
    listing = client.get("/jobs/").get_data(as_text=True)
    assert f'job={own}"' in listing and f'job={other}"' not in listing
    assert client.get(f"/jobs/view?job={own}").status_code == 200
    assert client.get(f"/jobs/view?job={other}").status_code == 403
    token = csrf_token(client, f"/jobs/view?job={own}")
    assert client.post("/jobs/cancel", data={"job": other, "csrf_token": token}).status_code == 403
    with appdb.transaction() as session:
        assert session.get(CloudJob, other).status == "pending"
    assert any(
        f"email job {other} is outside your scope" in (e.details or "")
        and e.companyid == site.companies["B"]
        for e in audit(app, "access_denied")
    )


def test_cancel_and_retry_failed_change_state_and_are_audited(app, site, client_as):
    appdb = app.extensions["manireports"].appdb
    configure(appdb, site.companies["A"], "smtp", {"host": "127.0.0.1"})
    job_id = make_job(appdb, 4, site.companies["A"])
    client = client_as("mgr_a")
    token = csrf_token(client, f"/jobs/view?job={job_id}")
    assert client.post("/jobs/cancel", data={"job": job_id, "csrf_token": token}).status_code == 302
    assert recipient_statuses(appdb, job_id) == {"cancelled": 4}

    failing = make_job(appdb, 3, site.companies["A"])
    with appdb.transaction() as session:
        job = session.get(CloudJob, failing)
        job.status, job.emails_failed = "failed", 3
        for recipient in session.scalars(select(type(recipients(appdb, failing)[0]))):
            if recipient.jobid == failing:
                recipient.status, recipient.last_error = "failed", "550 no such user"
    page = client.get(f"/jobs/view?job={failing}").get_data(as_text=True)
    assert "550 no such user" in page
    data = {"job": failing, "csrf_token": token}
    assert client.post("/jobs/retry-failed", data=data).status_code == 302
    assert recipient_statuses(appdb, failing) == {"pending": 3}
    with appdb.transaction() as session:
        assert session.get(CloudJob, failing).status == "queued"
    changes = [json.loads(e.details) for e in audit(app, "cloud_job_status")]
    assert {c["to"] for c in changes} >= {"cancelled", "queued"}
    assert all(e.userid == site.users["mgr_a"] for e in audit(app, "cloud_job_status"))
