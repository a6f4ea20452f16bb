"""Mailer processes: a company can neither reach the mailers' networks nor read replies there."""

from __future__ import annotations

import json

from sqlalchemy import select

from common.mail import failures
from common.models.mail import CloudConf
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    mailer_env,
    make_job,
    recipients,
    smtp_config,
    wait_final,
)


def nats_port(nats) -> int:  # type: ignore[no-untyped-def]
    return int(nats.url.rsplit(":", 1)[1])


def shown_errors(appdb, job_id) -> list[str]:  # type: ignore[no-untyped-def]
    job = wait_final(appdb, job_id)
    return [job.last_error or "", *(r.last_error or "" for r in recipients(appdb, job_id))]


def test_an_smtp_host_that_is_another_service_shows_no_word_of_its_reply(
    tmp_path, fresh_nats, appdb, spawn_service
):
    # The NATS server greets with its server_id and key: the SMTP relay here is that service.
    relay = {"host": "127.0.0.1", "port": nats_port(fresh_nats), "security": "none"}
    configure(appdb, COMPANY_A, "smtp", relay)
    job_id = make_job(appdb, 3)
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb))
    dispatch(fresh_nats.url, job_id)

    errors = shown_errors(appdb, job_id)

    assert set(errors[1:]) == {failures.SESSION_FAILED}
    assert not any("server_id" in e or "INFO" in e for e in errors)


def test_a_provider_url_that_is_another_service_shows_no_word_of_its_reply(
    tmp_path, fresh_nats, appdb, spawn_service
):
    configure(appdb, COMPANY_A, "sendgrid", {"api_key": "SG.company-key"}, chunk_size=5)
    job_id = make_job(appdb, 5, chunk_size=5)
    elsewhere = f"http://127.0.0.1:{nats_port(fresh_nats)}"  # the site's URL, for this test
    env = mailer_env(tmp_path, fresh_nats.url, appdb, MAILER_MAX_DELIVER="2",
                     MAILER_BACKOFF_BASE_MS="50", MAIL_SENDGRID_BASE_URL=elsewhere)  # fmt: skip
    spawn_service("mailer", env)
    dispatch(fresh_nats.url, job_id)

    errors = shown_errors(appdb, job_id)

    assert failures.UNREACHABLE in errors[0]  # the job's dead-letter note
    assert not any("server_id" in e or "INFO" in e for e in errors)


def test_settings_stored_before_the_host_check_are_refused_at_send_time(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink))
    with appdb.transaction() as session:
        row = session.scalar(select(CloudConf).where(CloudConf.companyid == COMPANY_A))
        plain = json.loads(row.settings)
        del plain["allow_private_smtp_host"]  # as no site admin ever allowed it
        row.settings = json.dumps(plain)
    job_id = make_job(appdb, 4)
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb))
    dispatch(fresh_nats.url, job_id)

    errors = shown_errors(appdb, job_id)

    assert set(errors[1:]) == {failures.HOST_NOT_ALLOWED}
    assert smtp_sink.recipients == set() and smtp_sink.sessions == 0
