"""What the job monitor shows: jobs in a tenant scope, progress, rate, status breakdown, errors.

The live figures come from one place, for the monitor page and the API alike: one statement
reads everything a job's progress needs.

`read_snapshot` is that one SELECT (the job row with scalar subqueries for the recipient
counts, the open dead letters, the company's configured rate and the send times), and
`JobSnapshot` turns it into what the page shows: progress, an honest rate, an ETA and the final
state in words.

The rate is measured from the recipients' outcome times (`timesent`, written when the provider
answered), not from the job's start and end: over the last RATE_WINDOW_S seconds while the job
runs, over the whole job once it is final. A mailer records a sub-batch's outcomes with one
timestamp, and the shared quota lets one burst (the first sub-batch) through at once, so the
messages of the first timestamp in the window mark its start and are not counted:
rate = (messages after the first timestamp) / (last − first). Under a token bucket of rate R
that is at most R (plus send-time jitter), so the rate shown is above the configured limit only
when the sending really was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.mail.job_status import JobActions, job_actions
from common.mail.unsubscribe import RECIPIENT_SKIPPED
from common.models.base import UTCDateTime, utcnow
from common.models.mail import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_FINAL_STATES,
    JOB_PARTIALLY_FAILED,
    RECIPIENT_CANCELLED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    RECIPIENT_SENT,
    CloudConf,
    CloudDeadChunk,
    CloudJob,
    CloudRecipient,
)
from common.tenancy import TenantScope, scoped

RATE_WINDOW_S = 10.0
STATE_LABELS = {
    "pending": "Waiting to start",
    "queued": "Queued",
    "processing": "Sending",
    JOB_COMPLETED: "Completed",
    JOB_PARTIALLY_FAILED: "Completed with failures",
    JOB_FAILED: "Failed",
    JOB_CANCELLED: "Cancelled",
}
_R = CloudRecipient
_ANSWERED = (RECIPIENT_SENT, RECIPIENT_FAILED)  # outcomes a provider gave (rate tokens spent)


def _count(*where: Any) -> Any:
    return select(func.count()).select_from(_R).where(*where).scalar_subquery()


def _times(job_id: int, since: datetime | None) -> list[Any]:
    """count, first, last, and count at first of the provider's answers (since ``since``)."""
    where = [_R.jobid == job_id, _R.status.in_(_ANSWERED), _R.timesent.isnot(None)]
    if since is not None:
        where.append(_R.timesent >= since)
    first = select(func.min(_R.timesent)).where(*where).scalar_subquery()
    return [
        _count(*where),
        first,
        select(func.max(_R.timesent)).where(*where).scalar_subquery(),
        _count(*where, _R.timesent == first),
    ]


def snapshot_statement(job_id: int, now: datetime):  # type: ignore[no-untyped-def]
    """The one SELECT behind a snapshot (also what the benchmark counts)."""
    j = CloudJob
    window = _times(job_id, now - timedelta(seconds=RATE_WINDOW_S))
    whole = _times(job_id, None)
    return select(
        j.id, j.companyid, j.type, j.status, j.recipients_total, j.emails_sent,
        j.emails_failed, j.chunks_total, j.last_error, j.timecreated, j.timestarted,
        j.timecompleted,
        _count(_R.jobid == job_id, _R.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING))),
        _count(_R.jobid == job_id, _R.status == RECIPIENT_CANCELLED),
        _count(_R.jobid == job_id, _R.status == RECIPIENT_SKIPPED),
        select(func.count()).select_from(CloudDeadChunk).where(
            CloudDeadChunk.jobid == job_id, CloudDeadChunk.timeretried.is_(None)
        ).scalar_subquery(),
        select(CloudConf.rate_per_s).where(CloudConf.companyid == j.companyid)
        .limit(1).scalar_subquery(),
        *window, *whole,
    ).where(j.id == job_id)  # fmt: skip


_UTC = UTCDateTime()


def _aware(value: Any) -> datetime | None:
    """Scalar subqueries lose the column type: SQLite hands back text, MariaDB naive times."""
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _UTC.process_result_value(value, None)  # type: ignore[arg-type]


def measured_rate(count: int, first: Any, last: Any, at_first: int) -> float | None:
    """Messages per second after the first timestamp; None until two timestamps exist."""
    first, last = _aware(first), _aware(last)
    if not count or first is None or last is None:
        return None
    span = (last - first).total_seconds()
    if span <= 0:
        return None
    return (count - at_first) / span


@dataclass(frozen=True)
class JobSnapshot:
    job_id: int
    company_id: int
    job_type: str
    status: str
    total: int
    sent: int
    failed: int
    open: int
    cancelled: int
    skipped: int
    dead_open: int
    limit_per_s: float | None
    rate_per_s: float | None
    last_error: str | None
    created: datetime | None
    started: datetime | None
    completed: datetime | None
    read_at: datetime

    @property
    def final(self) -> bool:
        return self.status in JOB_FINAL_STATES

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.cancelled

    @property
    def progress_pct(self) -> float | None:
        """Share of recipients dealt with; None for a cancelled job (a percentage of a job
        that was stopped on purpose says nothing: the counts do)."""
        if self.status == JOB_CANCELLED:
            return None
        if self.status in (JOB_COMPLETED, JOB_PARTIALLY_FAILED, JOB_FAILED):
            return 100.0
        return round(100 * self.done / max(self.total, 1), 1)

    @property
    def eta_s(self) -> float | None:
        if self.final or not self.open or not self.rate_per_s:
            return None
        return round(self.open / self.rate_per_s, 1)

    @property
    def actions(self) -> JobActions:
        return job_actions(self.status, failed=self.failed, dead_open=self.dead_open)

    @property
    def label(self) -> str:
        return STATE_LABELS.get(self.status, self.status)

    @property
    def summary(self) -> str:
        """The state in words with the counts that matter for it."""
        parts = [f"{self.sent:,} sent"]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped (unsubscribed)")
        if self.cancelled:
            parts.append(f"{self.cancelled:,} cancelled")
        if not self.final:
            parts.append(f"{self.open:,} to send")
        return f"{self.label}: {', '.join(parts)} of {self.total:,}"

    def as_json(self) -> dict[str, Any]:
        actions = self.actions
        return {
            "job": self.job_id, "status": self.status, "label": self.label,
            "summary": self.summary, "final": self.final, "total": self.total,
            "sent": self.sent, "failed": self.failed, "skipped": self.skipped,
            "cancelled": self.cancelled, "open": self.open, "progress_pct": self.progress_pct,
            "rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 1),
            "rate_window_s": None if self.final else RATE_WINDOW_S,
            "limit_per_s": self.limit_per_s, "eta_s": self.eta_s, "dead_open": self.dead_open,
            "last_error": self.last_error if (self.dead_open or self.failed) else None,
            "actions": {"cancel": actions.cancel, "retry_failed": actions.retry_failed,
                        "retry_dead": actions.retry_dead},
            "read_at": self.read_at.isoformat(timespec="seconds"),
        }  # fmt: skip


def read_snapshot(session: Session, job_id: int, now: datetime) -> JobSnapshot | None:
    row = session.execute(snapshot_statement(job_id, now)).first()
    if row is None:
        return None
    (job_id_, company_id, job_type, status, total, sent, failed, _chunks, last_error, created,
     started, completed, open_, cancelled, skipped, dead_open, limit, *times) = row  # fmt: skip
    window, whole = times[:4], times[4:]
    final = status in JOB_FINAL_STATES
    if final:
        rate = measured_rate(int(whole[0] or 0), whole[1], whole[2], int(whole[3] or 0))
    else:
        rate = measured_rate(int(window[0] or 0), window[1], window[2], int(window[3] or 0))
        if rate is None and status == "processing" and not window[0]:
            last = _aware(whole[2])
            # Nothing answered within the window although the job has sent before: stalled.
            if last is not None and (now - last).total_seconds() > RATE_WINDOW_S:
                rate = 0.0
    return JobSnapshot(
        job_id=int(job_id_), company_id=int(company_id), job_type=str(job_type),
        status=str(status), total=int(total), sent=int(sent), failed=int(failed),
        open=int(open_ or 0), cancelled=int(cancelled or 0), skipped=int(skipped or 0),
        dead_open=int(dead_open or 0), limit_per_s=float(limit) if limit else None,
        rate_per_s=rate, last_error=last_error, created=created, started=started,
        completed=completed, read_at=now,
    )  # fmt: skip


@dataclass(frozen=True)
class JobProgress:
    """A job with the live monitor's figures (what the API returns)."""

    job: CloudJob
    breakdown: dict[str, int]
    progress_pct: float
    rate_per_s: float | None
    eta_s: float | None = None


def list_jobs(session: Session, scope: TenantScope, *, limit: int = 100) -> list[CloudJob]:
    """The jobs of the companies in ``scope``, newest first."""
    query = select(CloudJob).order_by(CloudJob.id.desc()).limit(limit)
    return list(session.scalars(scoped(query, scope)))


def job_progress(session: Session, job: CloudJob) -> JobProgress:
    """The job's progress, rate and ETA as the live monitor page shows them (read_snapshot).

    A cancelled job has no percentage on the page (its counts say it); here, where a number is
    part of the API's contract, it is the share of recipients dealt with, cancelled ones
    included, so 100."""
    breakdown = recipient_breakdown(session, job.id)
    snapshot = read_snapshot(session, job.id, utcnow())
    if snapshot is None:  # deleted meanwhile: what the row says
        done = job.emails_sent + job.emails_failed + breakdown.get(RECIPIENT_CANCELLED, 0)
        return JobProgress(job, breakdown, round(100 * done / max(job.recipients_total, 1), 1),
                           None)  # fmt: skip
    pct = snapshot.progress_pct
    if pct is None:
        pct = round(100 * snapshot.done / max(snapshot.total, 1), 1)
    rate = None if snapshot.rate_per_s is None else round(snapshot.rate_per_s, 1)
    return JobProgress(job, breakdown, pct, rate, snapshot.eta_s)


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
