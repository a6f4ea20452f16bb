"""Retention: the daily task that deletes what is past the retention settings.

Each kind of record is removed in bounded batches: the ids of up to `batch` expired rows are
selected through the indexed time column, then deleted by primary key in a short transaction
of their own. No statement scans or locks a whole table on MariaDB, and the web tier's writes
wait for one batch at most. What was removed (rows per table) is logged and written to the
audit log as one `retention_cleanup` entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, or_, select

from common.appdb import AppDB
from common.audit import record_audit
from common.models.access import AuditLog
from common.models.analytics import CacheSummary, UsertimeSession
from common.models.base import utcnow
from common.models.custom import ReportRun
from common.models.hrsync import HrSyncRun
from common.models.mail import JOB_FINAL_STATES, CloudJob, CloudRecipient
from common.models.schedules import ReportFile, TaskRun
from common.settings import Settings

log = logging.getLogger(__name__)

BATCH = 5000
AUDIT_ACTION = "retention_cleanup"


@dataclass(frozen=True)
class RetentionRule:
    """What one setting removes: `expired(cutoff)` selects the ids of rows past it."""

    table: str
    setting: str  # the Settings attribute holding the days (0: keep forever)
    variable: str  # its environment variable
    what: str  # what the rows are, for the privacy statement
    expired: Callable[[datetime], Select[Any]]


RULES: tuple[RetentionRule, ...] = (
    RetentionRule(
        AuditLog.__tablename__, "retention_audit_days", "RETENTION_AUDIT_DAYS",
        "audit log entries (who did what, when, from which address)",
        lambda cutoff: select(AuditLog.id).where(AuditLog.timecreated < cutoff),
    ),
    RetentionRule(
        ReportRun.__tablename__, "retention_report_runs_days", "RETENTION_REPORT_RUNS_DAYS",
        "report runs (who ran which report with which filters, and how it went)",
        lambda cutoff: select(ReportRun.id).where(ReportRun.started_at < cutoff),
    ),
    RetentionRule(
        ReportFile.__tablename__, "retention_report_runs_days", "RETENTION_REPORT_RUNS_DAYS",
        "files of scheduled reports (kept with their runs, and never past their link's expiry)",
        lambda cutoff: select(ReportFile.id)
        .where(or_(ReportFile.created_at < cutoff, ReportFile.expires_at < utcnow())),
    ),
    RetentionRule(
        TaskRun.__tablename__, "retention_report_runs_days", "RETENTION_REPORT_RUNS_DAYS",
        "runs of scheduled tasks (which ran when, how long, how it went)",
        lambda cutoff: select(TaskRun.id).where(TaskRun.started_at < cutoff),
    ),
    RetentionRule(
        HrSyncRun.__tablename__, "retention_report_runs_days", "RETENTION_REPORT_RUNS_DAYS",
        "HR sync runs (their summaries and dry-run diffs: names and emails of changed users)",
        lambda cutoff: select(HrSyncRun.id).where(HrSyncRun.started_at < cutoff),
    ),
    RetentionRule(
        CacheSummary.__tablename__, "retention_cache_days", "RETENTION_CACHE_DAYS",
        "cached dashboard figures (counted from their expiry)",
        lambda cutoff: select(CacheSummary.id).where(CacheSummary.expires_at < cutoff),
    ),
    RetentionRule(
        UsertimeSession.__tablename__, "retention_heartbeat_days", "RETENTION_HEARTBEAT_DAYS",
        "time-on-course sessions (from heartbeats and the Moodle log; counted from the last beat)",
        lambda cutoff: select(UsertimeSession.id).where(UsertimeSession.lastbeat < cutoff),
    ),
    RetentionRule(
        CloudRecipient.__tablename__, "retention_email_recipients_days",
        "RETENTION_EMAIL_RECIPIENTS_DAYS",
        "email job recipients (address, template data, delivery status) of finished jobs, "
        "counted from the job's creation; the job's totals stay",
        lambda cutoff: select(CloudRecipient.id)
        .join(CloudJob, CloudJob.id == CloudRecipient.jobid)
        .where(CloudJob.timecreated < cutoff, CloudJob.status.in_(JOB_FINAL_STATES)),
    ),
)  # fmt: skip

_MODELS: dict[str, Any] = {
    AuditLog.__tablename__: AuditLog,
    ReportRun.__tablename__: ReportRun,
    ReportFile.__tablename__: ReportFile,
    TaskRun.__tablename__: TaskRun,
    HrSyncRun.__tablename__: HrSyncRun,
    CacheSummary.__tablename__: CacheSummary,
    UsertimeSession.__tablename__: UsertimeSession,
    CloudRecipient.__tablename__: CloudRecipient,
}


def retention_days(settings: Settings) -> dict[str, int]:
    """Days kept per table (0: forever)."""
    return {rule.table: int(getattr(settings, rule.setting)) for rule in RULES}


def delete_in_batches(appdb: AppDB, rule: RetentionRule, cutoff: datetime, batch: int) -> int:
    """Delete every row `rule` finds expired at `cutoff`, `batch` ids per transaction."""
    model = _MODELS[rule.table]
    removed = 0
    while True:
        with appdb.transaction() as session:
            ids = list(session.scalars(rule.expired(cutoff).limit(batch)))
            if ids:
                session.execute(
                    delete(model).where(model.id.in_(ids)),
                    execution_options={"synchronize_session": False},
                )
        removed += len(ids)
        if len(ids) < batch:
            return removed


def run_retention(
    appdb: AppDB, settings: Settings, *, now: datetime | None = None, batch: int = BATCH
) -> dict[str, int]:
    """Remove what is past retention; returns rows removed per table (tables kept forever
    are left out) and records them in the audit log."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    now = now or utcnow()
    removed: dict[str, int] = {}
    for rule in RULES:
        days = int(getattr(settings, rule.setting))
        if days <= 0:
            continue
        removed[rule.table] = delete_in_batches(appdb, rule, now - timedelta(days=days), batch)
    log.info("retention: removed %s", removed)
    with appdb.transaction() as session:
        record_audit(session, actor_id=None, action=AUDIT_ACTION, object_type="retention",
                     details={"removed": removed, "days": retention_days(settings)})  # fmt: skip
    return removed
