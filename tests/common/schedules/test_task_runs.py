"""Runs of scheduled tasks in `manireports_task_runs`, and the emails to the site admins when a
task keeps failing and when it recovers: on SQLite and MariaDB, with a real Moodle DB for the
admins and a real nats-server for the commands a service takes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.bus import Bus, ConsumerSpec, command_subject
from common.commands import CommandWorker
from common.db import make_engine
from common.migrate import upgrade
from common.models.mail import CloudJob, CloudRecipient
from common.models.schedules import TaskRun
from common.moodle import MoodleSource
from common.nats_server import EmbeddedNatsServer
from common.schedules.task_runs import (
    alert_on_streak,
    failure_streak,
    record_task_run,
    recorded_task,
    recorded_task_async,
)
from common.service import RetryLater
from common.templating import render
from tests.conftest import backend_of, migrated_database
from tests.factories.moodle import MoodleFactory
from tests.support import make_settings, service_env, wait_for

T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


@pytest.fixture
def appdb(moodle_url: str, tmp_path: Path) -> Iterator[AppDB]:
    """An app DB on the same kind of server as the Moodle DB, but a database of its own."""
    made = migrated_database(backend_of(moodle_url), tmp_path)
    db = AppDB(next(made))
    yield db
    db.dispose()
    made.close()


@pytest.fixture
def moodle(moodle_url: str) -> MoodleFactory:
    """A Moodle site with three administrators: the main one, a second one, and a suspended
    one (who is not mailed); a deleted user left in the list is not mailed either."""
    factory = MoodleFactory(make_engine(moodle_url))
    second = factory.user(username="second_admin", email="second.admin@example.com")
    suspended = factory.user(username="away_admin", email="away@example.com", suspended=1)
    gone = factory.user(username="gone_admin", email="gone@example.com")
    factory.delete_user(gone)
    factory.user(username="not_admin", email="learner@example.com")
    factory.site_admins([factory.ADMIN_ID, second, suspended, gone])
    return factory


@pytest.fixture
def source(moodle: MoodleFactory, moodle_url: str) -> Iterator[MoodleSource]:
    src = MoodleSource(moodle_url)
    yield src
    src.dispose()


def rows(appdb: AppDB, task: str | None = None) -> list[TaskRun]:
    with appdb.transaction() as session:
        query = select(TaskRun).order_by(TaskRun.id)
        if task:
            query = query.where(TaskRun.task == task)
        found = list(session.scalars(query))
        session.expunge_all()
    return found


def alerts(appdb: AppDB) -> list[dict[str, Any]]:
    """Every task_alert job: its rendered subject, its payload and its recipients."""
    with appdb.transaction() as session:
        jobs = session.scalars(select(CloudJob).where(CloudJob.type == "task_alert")
                               .order_by(CloudJob.id)).all()  # fmt: skip
        found = []
        for job in jobs:
            payload = json.loads(job.payload)
            emails = session.scalars(select(CloudRecipient.email)
                                     .where(CloudRecipient.jobid == job.id)).all()  # fmt: skip
            found.append({"subject": render(job.subject_template, payload["variables"]),
                          "text": render(job.text_template or "", payload["variables"]),
                          "alert": payload["alert"], "task": payload["task"],
                          "company": job.companyid, "source": job.source,
                          "emails": sorted(emails)})  # fmt: skip
    return found


ADMINS = ["admin@example.com", "second.admin@example.com"]


# --- recording -------------------------------------------------------------------------------


def test_a_run_is_written_running_first_then_ok_with_its_duration(appdb):
    with recorded_task(appdb, "engagement", detail={"slot": 7}) as run:
        [during] = rows(appdb)
        assert (during.task, during.status, during.trigger) == ("engagement", "running", "schedule")
        assert during.finished_at is None
        run.detail["learners"] = 12
        time.sleep(0.12)
    [after] = rows(appdb)
    assert after.id == during.id  # the same row, given its outcome
    assert after.status == "ok" and after.error is None
    assert after.duration_ms is not None and 120 <= after.duration_ms < 5000
    assert after.finished_at is not None
    wall_ms = (after.finished_at - after.started_at).total_seconds() * 1000
    assert abs(wall_ms - after.duration_ms) < 100
    assert json.loads(after.detail_json) == {"slot": 7, "learners": 12}


def test_a_failed_run_keeps_a_one_line_error_and_its_exception_goes_on(appdb):
    with (
        pytest.raises(ValueError, match="no such"),
        recorded_task(appdb, "scorm_summary", "manual"),
    ):
        raise ValueError("no such table:\n  mdl_scorm_attempt\n\tat line 3")
    [row] = rows(appdb)
    assert (row.status, row.trigger) == ("error", "manual")
    assert row.error == "ValueError: no such table: mdl_scorm_attempt at line 3"
    assert "\n" not in row.error and "Traceback" not in row.error
    assert row.duration_ms is not None and row.finished_at is not None


def test_a_long_error_is_cut_and_a_message_less_one_names_its_type(appdb):
    with pytest.raises(RuntimeError), recorded_task(appdb, "engagement"):
        raise RuntimeError("x" * 5000)
    with pytest.raises(KeyError), recorded_task(appdb, "engagement"):
        raise KeyError()
    long, bare = rows(appdb)
    assert len(long.error) == 1000 and long.error.endswith("…")
    assert bare.error == "KeyError"


def test_a_timeout_is_recorded_as_timeout(appdb):
    with pytest.raises(TimeoutError), recorded_task(appdb, "refresh_caches"):
        raise TimeoutError("over the 600 s limit")
    [row] = rows(appdb)
    assert (row.status, row.error) == ("timeout", "over the 600 s limit")


def test_a_cancelled_run_is_recorded_as_cancelled(appdb):
    async def run() -> None:
        async def task() -> None:
            async with recorded_task_async(appdb, "risk_scores"):
                await asyncio.sleep(30)

        started = asyncio.create_task(task())
        await asyncio.sleep(0.3)
        started.cancel()
        with pytest.raises(asyncio.CancelledError):
            await started

    asyncio.run(run())
    [row] = rows(appdb)
    assert (row.status, row.error) == ("error", "cancelled")


def test_a_generator_closed_mid_run_is_recorded_as_cancelled(appdb):
    def steps() -> Iterator[int]:
        with recorded_task(appdb, "estimate_time"):
            yield 1
            yield 2

    walk = steps()
    assert next(walk) == 1
    walk.close()  # GeneratorExit inside the block
    [row] = rows(appdb)
    assert (row.status, row.error) == ("error", "cancelled")


def test_failing_to_write_the_outcome_is_logged_and_the_tasks_outcome_stands(appdb, caplog):
    real = appdb.transaction
    calls = {"n": 0}

    def flaky():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 1:  # the start is written; every later write fails
            raise ConnectionError("database went away")
        return real()

    appdb.transaction = flaky  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR, logger="common.schedules.task_runs")
    with pytest.raises(ValueError, match="the task's own"), recorded_task(appdb, "engagement"):
        raise ValueError("the task's own error")
    with recorded_task(appdb, "engagement") as run:  # writes nothing at all: still runs
        pass
    appdb.transaction = real  # type: ignore[method-assign]
    assert run.status == "ok"
    assert [r.status for r in rows(appdb)] == ["running"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("cannot record its outcome (error)" in m and "database went away" in m
               for m in logged)  # fmt: skip
    assert any("cannot record its start" in m for m in logged)


def test_work_timed_elsewhere_is_recorded_whole(appdb):
    run_id = record_task_run(appdb, "report_schedules", "schedule", "error", T0,
                             T0 + timedelta(seconds=2.5), "render failed:\nbad SQL",
                             {"schedule": 4})  # fmt: skip
    [row] = rows(appdb)
    assert row.id == run_id
    assert (row.status, row.duration_ms, row.error) == ("error", 2500, "render failed: bad SQL")
    assert (row.started_at, row.finished_at) == (T0, T0 + timedelta(seconds=2.5))
    with pytest.raises(ValueError, match="status"):
        record_task_run(appdb, "report_schedules", "schedule", "running", T0, T0)


# --- alerts ----------------------------------------------------------------------------------


def finish(appdb, source, settings, task: str, status: str, at: int):  # type: ignore[no-untyped-def]
    """One finished run of `task` `at` minutes after T0, then the alert check."""
    start = T0 + timedelta(minutes=at)
    record_task_run(appdb, task, "schedule", status, start, start + timedelta(seconds=1),
                    None if status == "ok" else f"boom {at}")  # fmt: skip
    return alert_on_streak(appdb, source, settings, task)


def test_the_admins_are_told_once_at_the_third_failure_in_a_row_and_once_on_recovery(
    appdb, source, tmp_path
):
    settings = make_settings(tmp_path)  # TASK_ALERT_AFTER_FAILURES defaults to 3
    assert settings.task_alert_after_failures == 3
    assert finish(appdb, source, settings, "engagement", "ok", 0) is None
    assert finish(appdb, source, settings, "engagement", "error", 1) is None
    assert finish(appdb, source, settings, "engagement", "error", 2) is None
    assert alerts(appdb) == []
    job_id = finish(appdb, source, settings, "engagement", "error", 3)
    assert job_id is not None
    [failed] = alerts(appdb)
    assert failed == {"subject": "ManiReports: task engagement failed 3 times in a row",
                      "text": failed["text"], "alert": "failed", "task": "engagement",
                      "company": 0, "source": "task_alert", "emails": ADMINS}  # fmt: skip
    assert "Last error: boom 3" in failed["text"]
    # The fourth and fifth failures are the same streak: nothing more.
    assert finish(appdb, source, settings, "engagement", "error", 4) is None
    assert finish(appdb, source, settings, "engagement", "timeout", 5) is None
    assert len(alerts(appdb)) == 1
    # Another task's failures are its own.
    assert finish(appdb, source, settings, "scorm_summary", "error", 5) is None
    assert finish(appdb, source, settings, "engagement", "ok", 6) is not None
    failed_again, recovered = alerts(appdb)
    assert failed_again == failed
    assert recovered["subject"] == "ManiReports: task engagement recovered"
    assert "after failing 5 times in a row" in recovered["text"]
    assert (recovered["alert"], recovered["emails"]) == ("recovered", ADMINS)
    assert finish(appdb, source, settings, "engagement", "ok", 7) is None
    assert len(alerts(appdb)) == 2


def test_fewer_failures_than_the_threshold_tell_no_one(appdb, source, tmp_path):
    settings = make_settings(tmp_path)
    for at, status in enumerate(["error", "ok", "error", "error", "ok", "error", "ok"]):
        assert finish(appdb, source, settings, "engagement", status, at) is None
    assert alerts(appdb) == []
    with appdb.transaction() as session:
        assert failure_streak(session, "engagement") == 0


def test_a_second_check_of_the_same_streak_sends_nothing(appdb, source, tmp_path):
    settings = make_settings(tmp_path, TASK_ALERT_AFTER_FAILURES="2")
    finish(appdb, source, settings, "watch_email_queue", "error", 0)
    assert finish(appdb, source, settings, "watch_email_queue", "error", 1) is not None
    # A redelivered message, a second worker: the check runs again on the same rows.
    assert alert_on_streak(appdb, source, settings, "watch_email_queue") is None
    assert len(alerts(appdb)) == 1


def test_a_streak_from_the_first_run_counts_and_running_rows_do_not_break_it(
    appdb, source, tmp_path
):
    settings = make_settings(tmp_path, TASK_ALERT_AFTER_FAILURES="2")
    assert finish(appdb, source, settings, "engagement", "error", 0) is None
    with recorded_task(appdb, "engagement"):  # still running: neither a failure nor a success
        with appdb.transaction() as session:
            assert failure_streak(session, "engagement") == 1
    assert len(alerts(appdb)) == 0
    assert finish(appdb, source, settings, "engagement", "error", 5) is not None


def test_without_an_admin_to_mail_nothing_is_created(appdb, moodle, source, tmp_path):
    moodle.site_admins([moodle.user(username="noaddress", email="")])
    settings = make_settings(tmp_path, TASK_ALERT_AFTER_FAILURES="1")
    assert finish(appdb, source, settings, "engagement", "error", 0) is None
    assert alerts(appdb) == []


# --- commands --------------------------------------------------------------------------------


class TaskService(CommandWorker):
    """A command service whose commands succeed, fail, or ask to be retried."""

    def commands(self):  # type: ignore[no-untyped-def]
        async def works(payload, msg):  # type: ignore[no-untyped-def]
            self.ran.append(payload)

        async def fails(payload, msg):  # type: ignore[no-untyped-def]
            self.ran.append(payload)
            raise RuntimeError("Moodle DB unreachable\n(connection refused)")

        async def later(payload, msg):  # type: ignore[no-untyped-def]
            raise RetryLater("lock held by another run", delay_s=1)

        return {"works": works, "fails": fails, "later": later}


async def delivered(bus: Bus, service: str, command: str, payload: dict, msg_id: str):  # type: ignore[no-untyped-def]
    """Publish a command and pull it back as a service's consumer receives it. (The message
    id is made the service's own: the nats-server and its duplicate window are the session's.)"""
    await bus.publish(command_subject(service, command), payload, msg_id=f"{msg_id}:{service}")
    spec = ConsumerSpec("COMMANDS", f"{service}-{command}", command_subject(service, command))
    sub = await bus.pull(spec)
    [msg] = await sub.fetch(1, timeout=5)
    return msg


def test_a_command_naming_a_task_is_recorded_and_its_redelivery_is_not_run_twice(
    appdb, moodle, moodle_url, tmp_path, nats_server
):
    settings = make_settings(tmp_path, DATABASE_URL=appdb.url, MOODLE_DATABASE_URL=moodle_url,
                             NATS_URL=nats_server.url, TASK_ALERT_AFTER_FAILURES="2")  # fmt: skip
    service = f"tasks{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[Any]:
        bus = await Bus.connect(nats_server.url, "test-tasks")
        await bus.ensure_streams()
        worker = TaskService(settings, bus)
        worker.name = service
        worker.ran = []  # type: ignore[attr-defined]
        worker.appdb = appdb
        try:
            ok = await delivered(bus, service, "works", {"task": "engagement", "slot": 9},
                                 "schedule:engagement:9")  # fmt: skip
            await worker.dispatch({"task": "engagement", "slot": 9}, ok)
            await worker.dispatch({"task": "engagement", "slot": 9}, ok)  # redelivered
            manual = await delivered(bus, service, "works",
                                     {"task": "engagement", "trigger": "manual"},
                                     "manual:engagement:abc")  # fmt: skip
            await worker.dispatch({"task": "engagement", "trigger": "manual"}, manual)
            later = await delivered(bus, service, "later", {"task": "scorm_summary", "slot": 1},
                                    "schedule:scorm_summary:1")  # fmt: skip
            with pytest.raises(RetryLater):
                await worker.dispatch({"task": "scorm_summary", "slot": 1}, later)
            for slot in (1, 2):
                failing = await delivered(bus, service, "fails",
                                          {"task": "risk_scores", "slot": slot},
                                          f"schedule:risk_scores:{slot}")  # fmt: skip
                with pytest.raises(RuntimeError):
                    await worker.dispatch({"task": "risk_scores", "slot": slot}, failing)
            plain = await delivered(bus, service, "works", {"job": 1}, "not-a-task")
            await worker.dispatch({"job": 1}, plain)  # no task: not recorded
            return worker.ran  # type: ignore[attr-defined,no-any-return]
        finally:
            alert_source = getattr(worker, "_alert_source", None)
            if alert_source is not None:
                alert_source.dispose()
            await bus.close()

    ran = asyncio.run(scenario())
    assert ran == [{"task": "engagement", "slot": 9}, {"task": "engagement", "trigger": "manual"},
                   {"task": "risk_scores", "slot": 1}, {"task": "risk_scores", "slot": 2},
                   {"job": 1}]  # fmt: skip
    engagement = rows(appdb, "engagement")
    assert [(r.status, r.trigger) for r in engagement] == [("ok", "schedule"), ("ok", "manual")]
    assert json.loads(engagement[0].detail_json)["msg_id"] == f"schedule:engagement:9:{service}"
    assert json.loads(engagement[0].detail_json)["slot"] == 9
    [retrying] = rows(appdb, "scorm_summary")
    assert (retrying.status, retrying.error) == ("error", "retrying: lock held by another run")
    risk = rows(appdb, "risk_scores")
    assert [r.error for r in risk] == [
        "RuntimeError: Moodle DB unreachable (connection refused)"
    ] * 2
    assert len(rows(appdb)) == 5
    [alert] = alerts(appdb)  # the second failure in a row: the admins were told
    assert (alert["task"], alert["alert"], alert["emails"]) == ("risk_scores", "failed", ADMINS)


def test_a_service_process_records_the_task_commands_it_runs(tmp_path, spawn_service):
    """The real mailer, as `manireports up` starts it: "run now" of its task is recorded."""
    moodle_url = f"sqlite:///{tmp_path / 'moodle.db'}"
    MoodleFactory(make_engine(moodle_url))
    app_url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(app_url)
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    try:
        spawn_service("mailer", service_env(tmp_path, server.url))

        async def publish() -> None:
            bus = await Bus.connect(server.url, "test")
            await bus.ensure_streams()
            await bus.publish(command_subject("mailer", "watch_email_queue"),
                              {"task": "watch_email_queue", "trigger": "manual"},
                              msg_id="manual:watch_email_queue:0123456789ab")  # fmt: skip
            await bus.close()

        asyncio.run(publish())
        db = AppDB(app_url)
        try:
            finished = wait_for(lambda: [r for r in rows(db) if r.status != "running"],
                                timeout_s=30, message="a finished task run")  # fmt: skip
        finally:
            db.dispose()
    finally:
        server.stop()
    [run] = finished
    assert (run.task, run.trigger, run.status, run.error) == ("watch_email_queue", "manual", "ok",
                                                              None)  # fmt: skip
    detail = json.loads(run.detail_json)
    assert detail["service"] == "mailer" and detail["delivery"] == 1
    assert detail["msg_id"] == "manual:watch_email_queue:0123456789ab"
