"""The cloud worker path: mailer → SQS (moto) → reference Lambda → SES (moto) → signed callback."""

from __future__ import annotations

import asyncio
import json
import uuid

import boto3
import pytest

from common.mail import failures
from common.mail.config import load_config
from common.mail.jobs import chunk_plan
from common.mail.unsubscribe import UnsubscribeLinks
from common.models.mail import CloudJob
from common.models.unsubscribe import MailUnsubscribe
from services.mailer.cloud.handler import handler, send_chunk
from services.mailer.cloud.sqs import SqsRoute
from services.mailer.plaintext import text_part
from tests.fakes.local_http import LocalWsgiServer
from tests.fakes.moto_server import CREDENTIALS, REGION
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    job_row,
    mailer_env,
    make_job,
    recipient_statuses,
    recipients,
    wait_final,
)
from tests.support import TEST_SECRET, make_settings, wait_for
from web.app import create_app


@pytest.fixture
def web_server(tmp_path, fresh_nats, appdb):  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, NATS_URL=fresh_nats.url, DATABASE_URL=appdb.url))
    server = LocalWsgiServer(app)
    server.start()
    yield server
    server.stop()
    app.extensions["manireports"].close()


def cloud_settings(moto_ses, queue_url: str, callback_url: str) -> dict:  # type: ignore[no-untyped-def]
    return {
        "use_sqs": True,
        "sqs_queue_url": queue_url,
        "aws_region": REGION,
        "aws_access_key_id": CREDENTIALS["aws_access_key_id"],
        "aws_secret_access_key": CREDENTIALS["aws_secret_access_key"],
        "callback_url": callback_url,
    }


def ses_provider(moto_ses) -> dict:  # type: ignore[no-untyped-def]
    config = moto_ses.provider_config()
    config.pop("from_email")
    return config


def aws(service: str, moto_ses):  # type: ignore[no-untyped-def]
    return boto3.client(service, region_name=REGION, endpoint_url=moto_ses.endpoint_url,
                        **CREDENTIALS)  # fmt: skip


def run_lambda_on_queue(moto_ses, queue_url: str, secret: str, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """Feed what is on the queue to the Lambda handler, as the SQS trigger would."""
    monkeypatch.setenv("MANIREPORTS_CALLBACK_SECRET", secret)
    sqs, handled = aws("sqs", moto_ses), 0
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return handled
        event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in batch]}
        assert handler(event, ses=aws("ses", moto_ses)) == {"batchItemFailures": []}
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        handled += len(batch)


def test_sqs_job_is_sent_by_the_lambda_and_reported_back(
    tmp_path, fresh_nats, appdb, moto_ses, web_server, spawn_service, monkeypatch
):
    queue_url = aws("sqs", moto_ses).create_queue(QueueName=f"mail-{uuid.uuid4().hex}")["QueueUrl"]
    callback = f"{web_server.base_url}/callbacks/cloud"
    configure(appdb, COMPANY_A, "ses", ses_provider(moto_ses), chunk_size=10, site=moto_ses.site,
              **cloud_settings(moto_ses, queue_url, callback))  # fmt: skip
    job_id = make_job(appdb, 30, chunk_size=10)
    env = mailer_env(tmp_path, fresh_nats.url, appdb, MAILER_BACKOFF_BASE_MS="100", **moto_ses.env)
    spawn_service("mailer", env)
    dispatch(fresh_nats.url, job_id)
    wait_for(lambda: job_row(appdb, job_id).status == "queued", timeout_s=30)
    assert job_row(appdb, job_id).route == "sqs"
    with appdb.transaction() as session:
        secret = load_config(session, COMPANY_A, TEST_SECRET).callback_secret
    # SES throttles the Lambda once: what it could not send goes to the local mailers.
    moto_ses.fail_next(times=1, code="Throttling")
    assert run_lambda_on_queue(moto_ses, queue_url, secret, monkeypatch) == 3
    job = wait_final(appdb, job_id)
    assert job.status == "completed", job.last_error
    assert (job.emails_sent, job.emails_failed) == (30, 0)
    delivered = moto_ses.delivered()
    for i in range(30):
        assert len(delivered[f"learner{i}@learners.example"]) == 1
    assert delivered["learner3@learners.example"][0].subject == "Welcome L3"


def test_unreachable_queue_falls_back_to_the_local_mailers(
    tmp_path, fresh_nats, appdb, moto_ses, spawn_service
):
    missing = f"{moto_ses.endpoint_url}/123456789012/no-such-queue"
    nowhere = "http://127.0.0.1:1/callbacks/cloud"
    configure(appdb, COMPANY_A, "ses", ses_provider(moto_ses), chunk_size=10, site=moto_ses.site,
              **cloud_settings(moto_ses, missing, nowhere))  # fmt: skip
    job_id = make_job(appdb, 25, chunk_size=10)
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb, **moto_ses.env))
    dispatch(fresh_nats.url, job_id)
    job = wait_final(appdb, job_id)
    assert job.status == "completed" and job.route == "local"
    assert job.last_error == failures.CLOUD_UNAVAILABLE
    assert recipient_statuses(appdb, job_id) == {"sent": 25}
    delivered = moto_ses.delivered()
    assert all(len(delivered[f"learner{i}@learners.example"]) == 1 for i in range(25))


PUBLIC_URL = "https://reports.school.example"


@pytest.fixture
def sqs_company(appdb, moto_ses) -> str:  # type: ignore[no-untyped-def]
    """Company A sends through its own SQS queue (the Lambda's reports go nowhere here)."""
    queue_url = aws("sqs", moto_ses).create_queue(QueueName=f"mail-{uuid.uuid4().hex}")["QueueUrl"]
    nowhere = "http://127.0.0.1:1/callbacks/cloud"
    configure(appdb, COMPANY_A, "ses", ses_provider(moto_ses), chunk_size=10, site=moto_ses.site,
              **cloud_settings(moto_ses, queue_url, nowhere))  # fmt: skip
    return queue_url


def hand_to_lambda(appdb, moto_ses, job_id: int, links) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    """Hand the job's chunks to SQS as the mailer does, run the Lambda on them; the reports."""
    with appdb.transaction() as session:
        job = session.get(CloudJob, job_id)
        config = load_config(session, job.companyid, TEST_SECRET)
        plan = chunk_plan(session, job_id)
    route = SqsRoute(appdb, moto_ses.endpoint_url, links)
    asyncio.run(route(job, config, plan))
    sqs, reports = aws("sqs", moto_ses), []
    batch = sqs.receive_message(QueueUrl=config.sqs_queue_url, MaxNumberOfMessages=10)
    for message in batch.get("Messages", []):
        chunk = json.loads(message["Body"])
        reports.extend(send_chunk(aws("ses", moto_ses), chunk))
    return config.sqs_queue_url, reports


def test_lambda_mail_has_the_text_part_and_the_unsubscribe_headers_of_the_local_path(
    appdb, moto_ses, sqs_company
):
    """The SQS/Lambda path sends what the local mailers send: a text/plain part derived from
    the HTML (the same html2text), the recipient's signed List-Unsubscribe with RFC 8058
    one-click for bulk mail, and nothing to an address that unsubscribed (skipped, not sent)."""
    with appdb.transaction() as session:
        session.add(MailUnsubscribe(companyid=COMPANY_A, email="learner2@learners.example"))
    html = '<h1>News</h1><p>Hello {{firstname}}, see <a href="https://lms.example/c/1">it</a>.</p>'
    job_id = make_job(appdb, 3, html=html)
    links = UnsubscribeLinks(TEST_SECRET, PUBLIC_URL)
    _, reports = hand_to_lambda(appdb, moto_ses, job_id, links)

    assert sorted(r["status"] for r in reports) == ["sent", "sent"]
    assert recipient_statuses(appdb, job_id) == {"pending": 2, "skipped": 1}
    delivered = moto_ses.delivered()
    assert "learner2@learners.example" not in delivered
    received = delivered["learner1@learners.example"][0]
    assert received.text is not None and received.text == text_part(received.html or "", None)
    assert "Hello L1, see [it](https://lms.example/c/1)." in received.text
    assert "<h1>News</h1>" in (received.html or "")
    by_email = {r.email: r.id for r in recipients(appdb, job_id)}
    unsubscribe_link = received.headers["List-Unsubscribe"]
    assert unsubscribe_link.startswith(f"<{PUBLIC_URL}/unsubscribe/")
    token = unsubscribe_link.strip("<>").rsplit("/", 1)[1]
    assert links.recipient_of(token) == by_email["learner1@learners.example"]
    assert received.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    other = delivered["learner0@learners.example"][0].headers["List-Unsubscribe"]
    assert other != unsubscribe_link


def test_lambda_transactional_mail_keeps_its_text_and_has_no_unsubscribe(
    appdb, moto_ses, sqs_company
):
    """A welcome email: its own text template is the text part, no List-Unsubscribe, and an
    address that unsubscribed from bulk mail still gets it."""
    with appdb.transaction() as session:
        session.add(MailUnsubscribe(companyid=COMPANY_A, email="learner0@learners.example"))
    job_id = make_job(appdb, 1, job_type="user_created", text="Hi {{firstname}}: {{password}}")
    _, reports = hand_to_lambda(appdb, moto_ses, job_id, UnsubscribeLinks(TEST_SECRET, PUBLIC_URL))
    assert [r["status"] for r in reports] == ["sent"]
    received = moto_ses.delivered()["learner0@learners.example"][0]
    assert (received.text or "").strip() == "Hi L0: pw0"
    assert "List-Unsubscribe" not in received.headers
    assert "List-Unsubscribe-Post" not in received.headers


def test_sqs_job_whose_every_recipient_unsubscribed_finishes_without_sending(
    appdb, moto_ses, sqs_company
):
    with appdb.transaction() as session:
        session.add(MailUnsubscribe(companyid=COMPANY_A, email="learner0@learners.example"))
    job_id = make_job(appdb, 1)
    _, reports = hand_to_lambda(appdb, moto_ses, job_id, None)
    assert reports == []
    assert recipient_statuses(appdb, job_id) == {"skipped": 1}
    assert job_row(appdb, job_id).status == "completed"
    assert moto_ses.delivered() == {}
