"""Report schedules as the scheduler pages show them: those whose runs failed (after their
retries), the one to retry, and the schedules' summary line on the scheduler page.

Every query goes through the tenancy layer (`scoped` on the schedules and runs), so a page of
any tenancy sees only the schedules of its scope; the admin pages pass a site admin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from common.customreports.catalog import find_report
from common.models.custom import ReportRun
from common.models.schedules import ReportSchedule
from common.moodle import MoodleSource
from common.tenancy import NotFound, TenantScope, scoped

if TYPE_CHECKING:
    from common.appdb import AppDB

FAILED = "failed"
SCHEDULE_ORIGIN = "schedule"


@dataclass(frozen=True)
class FailedSchedule:
    schedule_id: int
    title: str
    report: str  # the report's name
    report_title: str  # its title, or its name when it no longer exists
    error: str
    attempts: int
    last_run_at: datetime | None
    company_id: int | None


def _report_titles(appdb: AppDB, names: set[str]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for name in sorted(names):
        report = find_report(name, appdb) if len(name) <= 100 else None
        titles[name] = report.title if report is not None else name
    return titles


def failed_schedules(
    appdb: AppDB, source: MoodleSource, scope: TenantScope
) -> list[FailedSchedule]:
    """The schedules in `scope` marked failed, the most recently run first."""
    query = scoped(select(ReportSchedule).where(ReportSchedule.last_status == FAILED),
                   TenantScope(company_ids=scope.company_ids), source)  # fmt: skip
    query = query.order_by(ReportSchedule.last_run_at.desc(), ReportSchedule.id)
    with appdb.transaction() as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    titles = _report_titles(appdb, {row.report for row in rows})
    return [FailedSchedule(row.id, row.title, row.report, titles[row.report],
                           row.failed_error or "", int(row.attempts or 0), row.last_run_at,
                           row.companyid)
            for row in rows]  # fmt: skip


def schedule_in_scope(
    appdb: AppDB, source: MoodleSource, scope: TenantScope, schedule_id: int
) -> ReportSchedule:
    """The schedule, if `scope` sees it; NotFound otherwise (out of sight is not told apart)."""
    query = scoped(select(ReportSchedule).where(ReportSchedule.id == schedule_id),
                   TenantScope(company_ids=scope.company_ids), source)  # fmt: skip
    with appdb.transaction() as session:
        row = session.scalars(query).first()
        if row is None:
            raise NotFound(f"No schedule {schedule_id}.")
        session.expunge(row)
    return row


@dataclass(frozen=True)
class SchedulesSummary:
    """The report schedules' line on the scheduler page."""

    last_run: ReportRun | None  # the newest scheduled report run
    next_run_at: datetime | None  # the earliest next run of an active schedule
    failed: int  # schedules marked failed


def schedules_summary(appdb: AppDB, source: MoodleSource, scope: TenantScope) -> SchedulesSummary:
    runs = scoped(select(ReportRun).where(ReportRun.origin == SCHEDULE_ORIGIN), scope, source)
    runs = runs.order_by(ReportRun.started_at.desc(), ReportRun.id.desc()).limit(1)
    schedules = TenantScope(company_ids=scope.company_ids)
    active = ReportSchedule.active.is_(True), ReportSchedule.next_run_at.is_not(None)
    upcoming = scoped(select(ReportSchedule.next_run_at).where(*active), schedules, source)
    failed = scoped(select(ReportSchedule.id).where(ReportSchedule.last_status == FAILED),
                    schedules, source)  # fmt: skip
    with appdb.transaction() as session:
        last = session.scalars(runs).first()
        if last is not None:
            session.expunge(last)
        next_run_at = session.scalars(upcoming.order_by(ReportSchedule.next_run_at)
                                      .limit(1)).first()  # fmt: skip
        count = len(list(session.scalars(failed)))
    return SchedulesSummary(last, next_run_at, count)
