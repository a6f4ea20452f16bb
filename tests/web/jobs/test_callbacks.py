"""The cloud worker's callback: only signed, fresh, first-time reports for the sender's own jobs."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from common.mail.config import load_config
from common.mail.signing import signed_headers
from common.models.access import AuditLog
from tests.factories.sites import NOW
from tests.services.mailer.conftest import configure, make_job, recipients
from tests.support import TEST_SECRET


@pytest.fixture
def jobs(app, site):  # type: ignore[no-untyped-def]
    appdb = app.extensions["manireports"].appdb
    ids = {}
    for name in ("A", "B"):
        company = site.companies[name]
        configure(appdb, company, "ses", {"region": "us-east-1"}, use_sqs=True,
                  sqs_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q",
                  aws_region="us-east-1")  # fmt: skip
        ids[name] = make_job(appdb, 3, company)
    return appdb, ids


def secret(appdb, company):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        return load_config(session, company, TEST_SECRET).callback_secret


def post(app, company, body, *, key, now=NOW, headers=None):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    sent = headers or signed_headers(key, company, raw, now=now)
    return app.test_client().post("/callbacks/cloud", data=raw, headers=sent)


def report(appdb, job_id, status="sent"):  # type: ignore[no-untyped-def]
    results = [{"recipient_id": r.id, "status": status, "provider_message_id": f"m{r.id}"}
               for r in recipients(appdb, job_id)]  # fmt: skip
    return {"job_id": job_id, "results": results}


def test_a_signed_report_is_applied_once(app, site, jobs):
    appdb, ids = jobs
    company = site.companies["A"]
    response = post(app, company, report(appdb, ids["A"]), key=secret(appdb, company))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sent"] == 3
    assert {r.status for r in recipients(appdb, ids["A"])} == {"sent"}


def test_bad_signature_old_timestamp_and_replay_are_refused(app, site, jobs):
    appdb, ids = jobs
    company = site.companies["A"]
    key = secret(appdb, company)
    body = report(appdb, ids["A"])
    assert post(app, company, body, key="not-the-key").status_code == 401
    assert post(app, company, body, key=key, now=NOW - 301).status_code == 401
    raw = json.dumps(body).encode()
    headers = signed_headers(key, company, raw, now=NOW)
    tampered = app.test_client().post("/callbacks/cloud", data=raw.replace(b"sent", b"fail"),
                                      headers=headers)  # fmt: skip
    assert tampered.status_code == 401
    assert {r.status for r in recipients(appdb, ids["A"])} == {"pending"}
    first = app.test_client().post("/callbacks/cloud", data=raw, headers=headers)
    replay = app.test_client().post("/callbacks/cloud", data=raw, headers=headers)
    assert (first.status_code, replay.status_code) == (200, 409)
    with appdb.transaction() as session:
        refusals = session.scalars(
            select(AuditLog.details).where(AuditLog.action == "cloud_callback_refused")
        ).all()
    assert len(refusals) == 4


def test_a_company_cannot_report_on_another_companys_job(app, site, jobs):
    appdb, ids = jobs
    company_a = site.companies["A"]
    body = report(appdb, ids["B"])
    response = post(app, company_a, body, key=secret(appdb, company_a))
    assert response.status_code == 403
    assert {r.status for r in recipients(appdb, ids["B"])} == {"pending"}
    # Claiming to be B without B's key does not help either.
    assert post(app, site.companies["B"], body, key=secret(appdb, company_a)).status_code == 401


def test_unsigned_or_unknown_company_is_refused(app, site, jobs):
    appdb, ids = jobs
    raw = json.dumps(report(appdb, ids["A"])).encode()
    client = app.test_client()
    assert client.post("/callbacks/cloud", data=raw).status_code == 400
    headers = signed_headers("x", 999, raw, now=NOW)
    assert client.post("/callbacks/cloud", data=raw, headers=headers).status_code == 401
