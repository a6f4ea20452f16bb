"""What the job monitor shows: jobs in a tenant scope, progress, rate, status breakdown, errors."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.models.base import utcnow
from common.models.mail import (
    RECIPIENT_CANCELLED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    CloudJob,
    CloudRecipient,
)
from common.tenancy import TenantScope, scoped


@dataclass(frozen=True)
class JobProgress:
    job: CloudJob
    breakdown: dict[str, int]
    progress_pct: float
    rate_per_s: float | None


def list_jobs(session: Session, scope: TenantScope, *, limit: int = 100) -> list[CloudJob]:
    """The jobs of the companies in ``scope``, newest first."""
    query = select(CloudJob).order_by(CloudJob.id.desc()).limit(limit)
    return list(session.scalars(scoped(query, scope)))


def job_progress(session: Session, job: CloudJob) -> JobProgress:
    breakdown = recipient_breakdown(session, job.id)
    done = job.emails_sent + job.emails_failed + breakdown.get(RECIPIENT_CANCELLED, 0)
    total = max(job.recipients_total, 1)
    rate = None
    if job.timestarted is not None and job.emails_sent:
        end = job.timecompleted or utcnow()
        seconds = (end - job.timestarted).total_seconds()
        rate = round(job.emails_sent / seconds, 1) if seconds > 0 else None
    return JobProgress(job, breakdown, round(100 * done / total, 1), rate)


def recent_errors(session: Session, job_id: int, *, limit: int = 20) -> list[tuple[str, str]]:
    """(email, error) of failed recipients, and of pending ones that have been retried."""
    rows = session.execute(
        select(CloudRecipient.email, CloudRecipient.last_error)
        .where(
            CloudRecipient.jobid == job_id,
            CloudRecipient.last_error.isnot(None),
            CloudRecipient.status.in_((RECIPIENT_FAILED, RECIPIENT_PENDING)),
        )
        .order_by(CloudRecipient.id)
        .limit(limit)
    )
    return [(email, str(error)) for email, error in rows]


def recipient_breakdown(session: Session, job_id: int) -> dict[str, int]:
    rows = session.execute(
        select(CloudRecipient.status, func.count())
        .where(CloudRecipient.jobid == job_id)
        .group_by(CloudRecipient.status)
    )
    return {status: int(count) for status, count in rows}
