"""Retention: exactly the rows past each setting go, in bounded batches, and the run is
recorded; 0 keeps a table forever."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select

from common.appdb import AppDB
from common.models.access import AuditLog
from common.models.analytics import CacheSummary, UsertimeSession
from common.models.custom import ReportRun
from common.models.mail import CloudJob, CloudRecipient
from common.models.schedules import ReportFile, TaskRun
from common.retention import AUDIT_ACTION, RULES, run_retention
from common.settings import Settings, SettingsError, load_settings

NOW = datetime.now(UTC).replace(microsecond=0)


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"MANIREPORTS_INSTANCE": str(tmp_path), **env})


@pytest.fixture
def appdb(app_db_url: str):  # type: ignore[no-untyped-def]
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def count(appdb: AppDB, model: type) -> int:
    with appdb.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def ids(appdb: AppDB, column) -> set[int]:  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        return set(session.scalars(select(column)))


def audit(at: datetime, userid: int = 1) -> dict[str, object]:
    return {"userid": userid, "action": "x", "object_type": "y", "outcome": "success",
            "timecreated": at}  # fmt: skip


def test_defaults_and_bad_values(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert settings.retention_audit_days == 365
    assert settings.retention_report_runs_days == 90
    assert settings.retention_cache_days == 7
    assert settings.retention_heartbeat_days == 730
    assert settings.retention_email_recipients_days == 90
    assert settings_for(tmp_path, RETENTION_AUDIT_DAYS="0").retention_audit_days == 0
    with pytest.raises(SettingsError, match="RETENTION_CACHE_DAYS"):
        settings_for(tmp_path, RETENTION_CACHE_DAYS="-1")
    with pytest.raises(SettingsError, match="RETENTION_HEARTBEAT_DAYS"):
        settings_for(tmp_path, RETENTION_HEARTBEAT_DAYS="two")


def test_exactly_the_expired_rows_go(appdb: AppDB, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, RETENTION_AUDIT_DAYS="30", RETENTION_REPORT_RUNS_DAYS="10",
                            RETENTION_CACHE_DAYS="2", RETENTION_HEARTBEAT_DAYS="100",
                            RETENTION_EMAIL_RECIPIENTS_DAYS="5")  # fmt: skip
    day = timedelta(days=1)
    second = timedelta(seconds=1)
    with appdb.transaction() as s:
        old_audit = AuditLog(**audit(NOW - 30 * day - second))
        edge_audit = AuditLog(**audit(NOW - 30 * day))  # exactly at the cutoff: kept
        new_audit = AuditLog(**audit(NOW - day))
        old_run = ReportRun(userid=1, report="r", report_title="R", origin="web", status="ok",
                            started_at=NOW - 11 * day)  # fmt: skip
        new_run = ReportRun(userid=1, report="r", report_title="R", origin="web",
                            status="running", started_at=NOW - 9 * day)  # fmt: skip
        old_cache = CacheSummary(cachekey="a", payload="{}", computed_at=NOW - 10 * day,
                                 expires_at=NOW - 3 * day)  # fmt: skip
        # Computed long ago but expired only yesterday: counted from its expiry, kept.
        new_cache = CacheSummary(cachekey="b", payload="{}", computed_at=NOW - 10 * day,
                                 expires_at=NOW - day)  # fmt: skip
        old_session = UsertimeSession(userid=1, courseid=2, sessionstart=NOW - 200 * day,
                                      lastbeat=NOW - 101 * day)  # fmt: skip
        # Started before the cutoff, last beat after it: kept.
        new_session = UsertimeSession(userid=1, courseid=2, sessionstart=NOW - 101 * day,
                                      lastbeat=NOW - 99 * day)  # fmt: skip
        old_done = CloudJob(
            companyid=1,
            type="bulk",
            status="completed",
            source="ui",
            subject_template="s",
            html_template="h",
            timecreated=NOW - 6 * day,
        )
        old_open = CloudJob(
            companyid=1,
            type="bulk",
            status="processing",
            source="ui",
            subject_template="s",
            html_template="h",
            timecreated=NOW - 6 * day,
        )
        new_done = CloudJob(
            companyid=1,
            type="bulk",
            status="completed",
            source="ui",
            subject_template="s",
            html_template="h",
            timecreated=NOW - 4 * day,
        )

        def report_file(token: str, created: datetime, expires: datetime) -> ReportFile:
            return ReportFile(run_id=1, schedule_id=1, filename="r.csv", content_type="text/csv",
                              size=1, content=b"x", token=token, created_at=created,
                              expires_at=expires)  # fmt: skip

        old_file = report_file("old", NOW - 11 * day, NOW + day)  # older than its runs: goes
        dead_link = report_file("dead", NOW - 2 * day, NOW - day)  # link expired: goes
        live_file = report_file("live", NOW - day, NOW + 6 * day)
        old_task = TaskRun(task="t", trigger="schedule", status="ok", started_at=NOW - 11 * day)
        new_task = TaskRun(task="t", trigger="schedule", status="ok", started_at=NOW - 9 * day)
        s.add_all([old_audit, edge_audit, new_audit, old_run, new_run, old_cache, new_cache,
                   old_session, new_session, old_done, old_open, new_done, old_file, dead_link,
                   live_file, old_task, new_task])  # fmt: skip
        s.flush()
        recips = {job.id: CloudRecipient(jobid=job.id, email=f"{job.id}@example.com")
                  for job in (old_done, old_open, new_done)}  # fmt: skip
        s.add_all(recips.values())
    removed = run_retention(appdb, settings, now=NOW)
    assert removed == {
        "manireports_audit_logs": 1,
        "manireports_report_runs": 1,
        "manireports_report_files": 2,
        "manireports_task_runs": 1,
        "manireports_hr_sync_runs": 0,
        "manireports_cache_summary": 1,
        "manireports_usertime_sessions": 1,
        "manireports_cloud_recip": 1,
    }
    with appdb.transaction() as s:
        logged = s.scalars(select(AuditLog).where(AuditLog.action == AUDIT_ACTION)).one()
    assert json.loads(logged.details or "{}")["removed"] == removed
    assert ids(appdb, AuditLog.id) == {edge_audit.id, new_audit.id, logged.id}
    assert ids(appdb, ReportRun.id) == {new_run.id}
    assert ids(appdb, CacheSummary.id) == {new_cache.id}
    assert ids(appdb, ReportFile.id) == {live_file.id}
    assert ids(appdb, TaskRun.id) == {new_task.id}
    assert ids(appdb, UsertimeSession.id) == {new_session.id}
    # An unfinished job's recipients stay whatever their age; the jobs themselves stay.
    assert ids(appdb, CloudRecipient.jobid) == {old_open.id, new_done.id}
    assert count(appdb, CloudJob) == 3
    # A second run finds nothing more.
    assert set(run_retention(appdb, settings, now=NOW).values()) == {0}


def test_zero_keeps_forever(appdb: AppDB, tmp_path: Path) -> None:
    env = {rule.variable: "0" for rule in RULES}
    with appdb.transaction() as s:
        s.execute(insert(AuditLog), [audit(NOW - timedelta(days=9000))])
    assert run_retention(appdb, settings_for(tmp_path, **env), now=NOW) == {}
    assert count(appdb, AuditLog) == 2  # the old entry and the run's own


def test_batches_are_bounded(appdb: AppDB, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, RETENTION_AUDIT_DAYS="1")
    old = NOW - timedelta(days=2)
    with appdb.transaction() as s:
        s.execute(insert(AuditLog), [audit(old, i) for i in range(12_000)])
        s.execute(insert(AuditLog), [audit(NOW, i) for i in range(7)])
    deletes: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE FROM MANIREPORTS_AUDIT_LOGS"):
            deletes.append(statement)

    event.listen(appdb.engine, "before_cursor_execute", seen)
    try:
        removed = run_retention(appdb, settings, now=NOW, batch=5000)
    finally:
        event.remove(appdb.engine, "before_cursor_execute", seen)
    assert removed["manireports_audit_logs"] == 12_000
    assert len(deletes) == 3
    assert count(appdb, AuditLog) == 7 + 1


def test_a_bad_batch_is_refused(appdb: AppDB, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch"):
        run_retention(appdb, settings_for(tmp_path), batch=0)
