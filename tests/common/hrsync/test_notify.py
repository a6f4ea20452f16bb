"""The HR sync's summary mail: one email job to the notification addresses, rendered as the
mailers render it, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.hrsync.notify import MAX_ERRORS_MAILED, notify_run, notify_run_async
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.models.mail import JOB_PENDING, CloudJob, CloudRecipient
from common.templating import render

SUMMARY: dict[str, Any] = {
    "created": 3, "updated": 2, "suspended": 1, "unsuspended": 0, "unchanged": 40, "skipped": 1,
    "errors": [], "cursor_before": {"since": "2026-11-01T00:00:00Z", "offset": 0},
    "cursor_after": {"since": "2026-12-01T06:00:00Z", "offset": 0}, "dry_run": False,
    "duration_s": 12.34,
}  # fmt: skip


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def store_addresses(appdb: AppDB, lines: str) -> None:
    with appdb.transaction() as session:
        session.merge(HrSyncConfig(id=SETTINGS_ROW, notify_emails=lines))


def mails(appdb: AppDB) -> list[dict[str, Any]]:
    with appdb.transaction() as session:
        found = []
        for job in session.scalars(select(CloudJob).order_by(CloudJob.id)):
            variables = json.loads(job.payload)["variables"]
            emails = session.scalars(select(CloudRecipient.email).where(
                CloudRecipient.jobid == job.id).order_by(CloudRecipient.id)).all()  # fmt: skip
            found.append({
                "id": job.id, "type": job.type, "source": job.source, "status": job.status,
                "company": job.companyid, "emails": list(emails),
                "subject": render(job.subject_template, variables, escape_html=False),
                "html": render(job.html_template, variables),
                "text": render(job.text_template or "", variables, escape_html=False),
            })  # fmt: skip
    return found


def test_no_addresses_no_mail(appdb):
    assert notify_run(appdb, None, SUMMARY, failed=False, env={}) is None
    store_addresses(appdb, "\n  \n")
    assert notify_run(appdb, None, SUMMARY, failed=False, env={}) is None
    assert mails(appdb) == []


def test_a_successful_run_mails_its_counts_to_every_stored_address(appdb):
    store_addresses(appdb, "hr@example.com\n ops@example.com \nHR@example.com\nnot-an-address\n")
    job_id = notify_run(appdb, None, SUMMARY, failed=False, env={})
    [mail] = mails(appdb)
    assert mail["id"] == job_id
    assert (mail["type"], mail["source"], mail["status"], mail["company"]) == (
        "hr_sync_report", "hr_sync", JOB_PENDING, 0)  # fmt: skip
    assert mail["emails"] == ["hr@example.com", "ops@example.com"]
    assert mail["subject"] == "HR sync: 3 created, 2 updated, 1 suspended"
    for line in ("created: 3", "updated: 2", "suspended: 1", "unsuspended: 0",
                 "unchanged: 40", "skipped: 1", "Duration: 12.3 s"):  # fmt: skip
        assert line in mail["text"]
    assert "since 2026-11-01T00:00:00Z, offset 0 -> since 2026-12-01T06:00:00Z" in mail["text"]
    assert "Errors" not in mail["text"]


def test_no_changes_and_dry_run_are_said_in_the_subject(appdb):
    store_addresses(appdb, "hr@example.com")
    quiet = {**SUMMARY, "created": 0, "updated": 0, "suspended": 0, "dry_run": True}
    notify_run(appdb, None, quiet, failed=False, env={})
    assert mails(appdb)[0]["subject"] == "HR sync (dry run): no changes"


def test_the_environment_wins_over_the_stored_addresses(appdb):
    store_addresses(appdb, "hr@example.com")
    notify_run(appdb, None, SUMMARY, failed=False,
               env={"HR_SYNC_NOTIFY": "ops@example.com, sec@example.com"})  # fmt: skip
    assert mails(appdb)[0]["emails"] == ["ops@example.com", "sec@example.com"]


def test_a_failed_run_names_its_reason_and_escapes_its_errors(appdb):
    store_addresses(appdb, "hr@example.com")
    errors = [{"employee_id": str(n), "error": f"<b>bad</b> {{{{x}}}} #{n}"} for n in range(70)]
    failed = {
        **SUMMARY,
        "errors": errors,
        "error": "would suspend 40 of 100 active users\n(max 10%)",
    }
    notify_run(appdb, None, failed, failed=True, env={})
    [mail] = mails(appdb)
    assert mail["subject"] == "HR sync FAILED: would suspend 40 of 100 active users (max 10%)"
    assert "&lt;b&gt;bad&lt;/b&gt; {{x}} #0" in mail["html"]
    assert "<b>bad" not in mail["html"]
    assert f"#{MAX_ERRORS_MAILED - 1}<" in mail["html"]
    assert f"#{MAX_ERRORS_MAILED}<" not in mail["html"]
    assert "Errors: 70 (the first 50 below" in mail["html"]


def test_without_a_reason_the_subject_counts_the_errors(appdb):
    store_addresses(appdb, "hr@example.com")
    one = {**SUMMARY, "errors": [{"employee_id": "42", "error": "Moodle said invalidrecord"}]}
    notify_run(appdb, None, one, failed=True, env={})
    two = {
        **SUMMARY,
        "errors": [{"employee_id": "1", "error": "x"}, {"employee_id": "2", "error": "y"}],
    }
    notify_run(appdb, None, two, failed=True, env={})
    assert [m["subject"] for m in mails(appdb)] == [
        "HR sync FAILED: employee 42: Moodle said invalidrecord",
        "HR sync FAILED: 2 errors",
    ]


def test_publish_dispatches_the_job_and_a_bus_failure_keeps_it_pending(appdb):
    store_addresses(appdb, "hr@example.com")
    sent: list[tuple[str, dict, str | None]] = []

    def publish(subject: str, payload: dict, *, msg_id: str | None = None) -> None:
        sent.append((subject, dict(payload), msg_id))

    job_id = notify_run(appdb, None, SUMMARY, failed=False, publish=publish, env={})
    assert sent == [("mr.cmd.mailer.dispatch_job", {"job": job_id}, f"dispatch:{job_id}")]

    def broken(subject: str, payload: dict, *, msg_id: str | None = None) -> None:
        raise ConnectionError("no bus")

    second = notify_run(appdb, None, SUMMARY, failed=False, publish=broken, env={})
    assert second is not None and mails(appdb)[1]["status"] == JOB_PENDING


def test_the_async_form_dispatches_through_an_async_publish(appdb):
    store_addresses(appdb, "hr@example.com")
    sent: list[str | None] = []

    async def publish(subject: str, payload: dict, *, msg_id: str | None = None) -> None:
        sent.append(msg_id)

    job_id = asyncio.run(
        notify_run_async(appdb, None, SUMMARY, failed=False, publish=publish, env={})
    )
    assert sent == [f"dispatch:{job_id}"]
