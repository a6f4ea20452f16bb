""" "Send test" on the compose page goes through the real pipeline: a one-recipient job on the
bus, a mailer process, the company's SMTP settings, a real SMTP server (aiosmtpd) — and the
message that arrives is the composed one, rendered with the first recipient's data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.models.mail import CloudJob
from common.nats_server import EmbeddedNatsServer
from tests.fakes.smtp_sink import SmtpSink
from tests.services.mailer.conftest import configure, mailer_env, smtp_config, wait_final
from tests.support import wait_for
from tests.web.jobs.conftest import job_counts, token


@pytest.fixture(scope="module")
def compose_bus(composed_site, tmp_path_factory) -> Iterator[EmbeddedNatsServer]:  # type: ignore[no-untyped-def]
    # A bus of this module's own, and one per site (SQLite, MariaDB): a mailer on a shared
    # one could take other tests' jobs, and a second app DB's `dispatch:1` would be dropped
    # by JetStream as a duplicate of the first's.
    server = EmbeddedNatsServer(tmp_path_factory.mktemp("compose-nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sink(composed_site) -> Iterator[SmtpSink]:  # type: ignore[no-untyped-def]
    # One per site, like the bus: each run counts exactly what it sent.
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


def test_send_test_reaches_the_smtp_server_rendered_for_the_first_recipient(
    composed_site, compose_app, signed_in_as, compose_bus, sink, spawn_service, tmp_path
):
    acme = composed_site.site.companies["A"]
    appdb = AppDB(compose_app.extensions["manireports"].settings.database_url)
    configure(appdb, acme, "smtp", smtp_config(sink))
    spawn_service("mailer", {**mailer_env(tmp_path, compose_bus.url, appdb),
                             "MOODLE_DATABASE_URL": composed_site.site.url})  # fmt: skip
    client = signed_in_as("mgr_a")
    form = {"csrf_token": token(client, acme), "subject": "Welcome {{firstname}}",
            "html": "<p>Dear {{firstname}}, see you in {{course}}.</p>",
            "source": "course", "course": str(composed_site.site.courses["First Aid"]),
            "test_to": "checker@acme.example"}  # fmt: skip
    before = job_counts(compose_app)

    response = client.post(f"/jobs/send-test?company={acme}", data=form,
                           headers={"Accept": "application/json"})  # fmt: skip

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["to"] == "checker@acme.example" and answer["dispatched"] is True
    assert job_counts(compose_app) == (before[0] + 1, before[1] + 1)  # one job, one recipient
    job = wait_final(appdb, answer["job"], timeout_s=60)
    assert (job.status, job.emails_sent) == ("completed", 1)
    wait_for(lambda: sink.received("checker@acme.example"), timeout_s=10, message="the test mail")
    [mail] = sink.received("checker@acme.example")
    assert mail.subject == "[Test] Welcome Ana"  # the course's first learner
    assert "Dear Ana, see you in First Aid." in (mail.html or "")
    assert len(sink.recipients) == 1  # nobody on the list was sent anything
    appdb.dispose()


def test_send_test_refuses_a_bad_address_or_template_and_queues_nothing(
    composed_site, compose_app, signed_in_as
):
    acme = composed_site.site.companies["A"]
    client = signed_in_as("mgr_a")
    before = job_counts(compose_app)
    form = {"csrf_token": token(client, acme), "subject": "Hi", "source": "paste",
            "html": "<p>Hi {{firstname}</p> {{#license}}", "recipients": "ana@acme.example",
            "test_to": "not an address"}  # fmt: skip
    response = client.post(f"/jobs/send-test?company={acme}", data=form,
                           headers={"Accept": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == {"test_to", "html"}
    page = client.post(f"/jobs/send-test?company={acme}", data=form)  # without JavaScript
    assert page.status_code == 422 and "not closed with" in page.get_data(as_text=True)
    assert ">ana@acme.example</textarea>" in page.get_data(as_text=True)
    assert job_counts(compose_app) == before
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        assert not session.scalars(
            select(CloudJob).where(CloudJob.subject_template == "[Test] Hi")
        ).all()
