"""Claiming IOMAD's `email` queue: atomically, exactly once, nothing lost."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from common.db import make_engine
from common.models.base import utcnow
from common.models.mail import CloudJob, CloudRecipient
from services.mailer.interception import MICRO, STALE_CLAIM_S, claim_email_queue_rows
from tests.factories.moodle import MoodleFactory
from tests.services.mailer.conftest import (
    command,
    configure,
    job_row,
    mailer_env,
    make_job,
    smtp_config,
    wait_final,
)
from tests.support import TEST_SECRET, wait_for


def build_queue(url: str, rows_per_company: int = 60):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    moodle = MoodleFactory(engine)
    acme, bolt = moodle.company(name="Acme"), moodle.company(name="Bolt")
    ids: dict[str, list[int]] = {"acme": [], "acme_other": [], "bolt": []}
    for i in range(rows_per_company):
        user = moodle.user(username=f"u{i}", firstname=f"Ana{i}")
        moodle.company_user(acme, user)
        template = "license_allocated" if i % 2 else "user_create"
        body = f"<p>Your temporary password is Tmp-{i}</p>"
        ids["acme"].append(moodle.email(templatename=template, companyid=acme, userid=user,
                                        subject=f"Welcome {i}", body=body))  # fmt: skip
        ids["acme_other"].append(moodle.email(templatename="course_completed", companyid=acme,
                                              userid=user))  # fmt: skip
        other = moodle.user(username=f"b{i}")
        moodle.company_user(bolt, other)
        ids["bolt"].append(moodle.email(templatename="user_create", companyid=bolt, userid=other))
    return engine, moodle, acme, bolt, ids


def sent_values(engine, moodle, ids):  # type: ignore[no-untyped-def]
    email = moodle.tables.email
    with engine.connect() as conn:
        return dict(conn.execute(select(email.c.id, email.c.sent).where(email.c.id.in_(ids))).all())


def test_two_watchers_claim_the_same_queue_and_each_row_becomes_exactly_one_recipient(
    tmp_path, appdb, moodle_url
):
    engine, moodle, acme, bolt, ids = build_queue(moodle_url, rows_per_company=300)
    configure(appdb, acme, "smtp", {"host": "127.0.0.1"},
              offloaded_events=["license_allocated", "user_create"], chunk_size=50)  # fmt: skip
    configure(appdb, bolt, "smtp", {"host": "127.0.0.1"}, offloaded_events=[], enabled=True)
    start = threading.Barrier(2)
    results: list[list[int]] = []

    def watch() -> None:
        own_engine = make_engine(moodle_url)
        start.wait()
        found = []
        for _ in range(5):
            found += claim_email_queue_rows(own_engine, moodle.tables, appdb, TEST_SECRET, limit=70)
        results.append(found)
        own_engine.dispose()

    watchers = [threading.Thread(target=watch) for _ in range(2)]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    # Whatever the two left over is claimed by a last pass.
    claim_email_queue_rows(engine, moodle.tables, appdb, TEST_SECRET)
    with appdb.transaction() as session:
        refs = list(session.scalars(select(CloudRecipient.source_ref)))
        jobs = list(session.scalars(select(CloudJob)))
    assert sorted(refs) == sorted(f"iomad_email:{i}" for i in ids["acme"])
    assert len(results) == 2  # (SQLite may serialise them so that one finds nothing left)
    assert {j.type for j in jobs} == {"license_allocation", "user_created"}
    assert all(j.companyid == acme and j.source == "iomad" for j in jobs)
    assert all(v and v > 0 for v in sent_values(engine, moodle, ids["acme"]).values())
    untouched = sent_values(engine, moodle, ids["acme_other"] + ids["bolt"])
    assert set(untouched.values()) == {None}
    engine.dispose()


def test_rows_left_by_a_watcher_that_died_mid_claim_are_recovered_once(tmp_path, appdb):
    url = f"sqlite:///{tmp_path / 'moodle.db'}"
    engine, moodle, acme, _, ids = build_queue(url, rows_per_company=6)
    configure(appdb, acme, "smtp", {"host": "127.0.0.1"}, offloaded_events=["user_create"])
    now = moodle.now
    first = claim_email_queue_rows(engine, moodle.tables, appdb, TEST_SECRET, now=now)
    assert len(first) == 1
    # A watcher died after claiming the rest with its marker and before creating the job.
    email = moodle.tables.email
    dead_marker = -((now - STALE_CLAIM_S - 10) * MICRO + 1)
    extra = [moodle.email(templatename="user_create", companyid=acme, userid=2)
             for _ in range(3)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(email.update().where(email.c.id.in_(extra)).values(sent=dead_marker))
    recovered = claim_email_queue_rows(engine, moodle.tables, appdb, TEST_SECRET, now=now)
    assert len(recovered) == 1
    with appdb.transaction() as session:
        refs = session.scalars(
            select(CloudRecipient.source_ref).where(CloudRecipient.jobid == recovered[0])
        ).all()
    assert sorted(refs) == sorted(f"iomad_email:{i}" for i in extra)
    assert all(v > 0 for v in sent_values(engine, moodle, extra).values())
    engine.dispose()


def test_watch_command_offloads_iomad_emails_and_keeps_the_original_content(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    url = f"sqlite:///{tmp_path / 'moodle.db'}"
    engine, moodle, acme, _, ids = build_queue(url, rows_per_company=10)
    configure(appdb, acme, "smtp", smtp_config(smtp_sink), offloaded_events=["user_create"])
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb, MOODLE_DATABASE_URL=url))
    command(fresh_nats.url, "watch_email_queue", {}, msg_id="watch-1")
    wait_for(lambda: len(smtp_sink.recipients) == 5, timeout_s=30)
    with appdb.transaction() as session:
        job_id = session.scalar(select(CloudJob.id))
    job = wait_final(appdb, job_id)
    assert job.status == "completed" and job.type == "user_created"
    received = smtp_sink.received("u0@example.com")
    assert len(received) == 1
    assert received[0].subject == "Welcome 0"
    assert "Your temporary password is Tmp-0" in received[0].html
    with appdb.transaction() as session:
        recipient = session.scalar(select(CloudRecipient).where(CloudRecipient.userid.isnot(None)))
        assert '"templatename": "user_create"' in recipient.recipient_data
    assert job_row(appdb, job_id).recipients_total == 5
    engine.dispose()


def test_the_watcher_dispatches_jobs_whose_dispatch_never_reached_the_bus(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    url = f"sqlite:///{tmp_path / 'moodle.db'}"
    engine, moodle, acme, _, _ = build_queue(url, rows_per_company=0)
    configure(appdb, acme, "smtp", smtp_config(smtp_sink))
    job_id = make_job(appdb, 12, acme)  # created, but no dispatch command was ever published
    fresh = make_job(appdb, 3, acme)
    with appdb.transaction() as session:
        session.get(CloudJob, job_id).timecreated = utcnow() - timedelta(minutes=10)
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb, MOODLE_DATABASE_URL=url))
    command(fresh_nats.url, "watch_email_queue", {}, msg_id="watch-pending")
    assert wait_final(appdb, job_id).status == "completed"
    assert len(smtp_sink.recipients) == 12
    # A job younger than the threshold is left to its own dispatch command.
    assert job_row(appdb, fresh).status == "pending"
    engine.dispose()
